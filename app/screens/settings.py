"""Settings form: one row per Settings field, its docstring as help.

The editors follow each field's description (app.settings.setting_options):
a Select for a field with choices (methods and PRM kinds from their
registries, Literal fields from their types) and for on/off fields, an Input
otherwise; the model fields get the model manager's entries.  NOT_IN_FORM
names the fields the form leaves alone, each with why."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from specsearch.core.offload import offload_warning
from specsearch.core.options import Option

from ..settings import FIELD_NAMES, ROLES, Settings, SettingsStore, registry_entries, setting_options, settings_path

NOT_IN_FORM = {
    "delimiter": "text that holds newlines (a blank line by default), which a one-line Input can neither show nor type",
    "system_prompt": "long free text that may hold newlines, which a one-line Input can neither show nor type",
}
"""Fields without an editor here, and why.  They keep their value when the form is
saved; settings.json, SPECSEARCH_<FIELD> and specsearch-tui --<field> set them."""
FORM_FIELDS = tuple(name for name in FIELD_NAMES if name not in NOT_IN_FORM)

TITLES = {"theta": "θ (theta)", "threshold_stat": "Θ (threshold stat)", "fixed_beta": "fixed β",
          "prm_head": "PRM head", "arith_check": "arithmetic check"}
PLACEHOLDERS = {"prm_head": "(the head shipped for the reward model)"}
SWITCH = (("on", "on"), ("off", "off"))  # a bool field's choices; Settings reads "on"/"off"


class SettingsScreen(Screen):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "close", "Back"),
    ]

    DEFAULT_CSS = """
    SettingsScreen #form { padding: 0 1; }
    SettingsScreen .row { height: auto; }
    SettingsScreen .row > Label { width: 20; padding: 1 1 0 0; text-style: bold; }
    SettingsScreen .row > .control { width: 48; }
    SettingsScreen .row > Vertical { width: 1fr; height: auto; padding-top: 1; }
    SettingsScreen .help { color: $text-muted; padding: 0 1; }
    SettingsScreen .overridden { color: $warning; padding: 0 1; }
    SettingsScreen #buttons { height: auto; padding: 0 1; }
    SettingsScreen #settings-error { color: $error; padding: 0 1; height: auto; }
    """

    def __init__(self, store: SettingsStore) -> None:
        super().__init__()
        self.store = store
        self.settings = store.effective

    def compose(self) -> ComposeResult:
        yield Header()
        options = setting_options()
        entries, defaults = registry_entries()
        with VerticalScroll(id="form"):
            yield Static(Text(f"Saved to {settings_path()}. Environment variables SPECSEARCH_<FIELD> and "
                              "command-line options override them for one run. Not here: "
                              + ", ".join(NOT_IN_FORM) + " (settings.json, env or command line).", style="dim"))
            for name in FORM_FIELDS:
                option = options[name]
                with Horizontal(classes="row"):
                    yield Label(TITLES.get(name, name.replace("_", " ")))
                    yield self._control(option, entries, defaults)
                    with Vertical():
                        yield Static(Text(" ".join(filter(None, (option.help, option.choice_help)))),
                                     classes="help")
                        if name in self.store.overrides:
                            yield Static(Text(f"overridden for this run: {self.store.overrides[name]!r}"),
                                         classes="overridden")
            yield Static("", id="settings-error")
            with Horizontal(id="buttons"):
                yield Button("Save (Ctrl+S)", variant="primary", id="save")
                yield Button("Back (Esc)", id="back")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "settings"

    def _control(self, option: Option, entries: list[Any], defaults: dict[str, Any]):
        name = option.name
        value = getattr(self.settings, name)
        wid = f"set-{name}"
        if name in ROLES:
            default = defaults.get(name)
            fallback = "the small model as judge" if name == "prm" else "none set"
            blank = f"(default: {default.name})" if default is not None else f"(default: {fallback})"
            # Text prompts: model names and paths are not markup (and "[small]" stays visible)
            options = [(Text(blank), "")] + [(Text(f"{e.name}  [{e.role or '-'}]"), e.name) for e in entries]
            if value and value not in {e.name for e in entries}:
                options.append((Text(value), value))  # a path given by env, command line or an older save
            return Select(options, value=value or "", allow_blank=False, id=wid, classes="control")
        if option.choices is not None:
            return Select([(c, c) for c in option.choices], value=value, allow_blank=False, id=wid, classes="control")
        kind = option.kind
        if kind is bool:
            return Select(SWITCH, value="on" if value else "off", allow_blank=False, id=wid, classes="control")
        input_type = {int: "integer", float: "number"}.get(kind, "text")
        return Input("" if value is None else str(value), type=input_type, id=wid,  # type: ignore[arg-type]
                     placeholder=PLACEHOLDERS.get(name, "(automatic)") if value is None else "", classes="control")

    def read_form(self) -> Settings:
        values = {name: getattr(self.settings, name) for name in NOT_IN_FORM}
        for name in FORM_FIELDS:
            widget = self.query_one(f"#set-{name}")
            raw = widget.value if isinstance(widget, (Input, Select)) else None
            values[name] = None if raw is Select.BLANK else raw
        return Settings.from_dict(values)

    def set_value(self, name: str, value: Any) -> None:
        """Set one control (used by tests and the command palette)."""
        widget = self.query_one(f"#set-{name}")
        if isinstance(widget, Select):
            if isinstance(value, bool):
                value = "on" if value else "off"
            widget.value = value if value is not None else ""
        elif isinstance(widget, Input):
            widget.value = "" if value is None else str(value)

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        error = self.query_one("#settings-error", Static)
        try:
            edited = self.read_form()
            self.store.save(edited)
        except (ValueError, OSError) as exc:
            error.update(Text(f"⚠ {exc}"))
            self.notify(str(exc), title="Settings not saved", severity="error")
            return
        error.update("")
        self.notify("Settings saved.")
        warning = offload_warning({role: getattr(edited, f"n_gpu_layers_{role}") for role in ROLES})
        if warning:  # GPU layers asked of a CPU-only build: say so now, not only at the next load
            self.notify(warning, title="GPU", severity="warning", timeout=12)
        self.dismiss(True)

    @on(Button.Pressed, "#back")
    def action_close(self) -> None:
        self.dismiss(False)

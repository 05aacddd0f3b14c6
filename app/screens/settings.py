"""Settings form: one row per Settings field, its docstring as help."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from specsearch.core.config import METHODS
from specsearch.core.prm import prm_kind_names

from ..settings import FIELD_NAMES, ROLES, Settings, SettingsStore, field_docs, field_type, registry_entries, settings_path

CHOICES: dict[str, tuple[str, ...]] = {
    "method": METHODS,
    "prm_kind": prm_kind_names(),
    "threshold_stat": ("mean", "max", "quantile"),
}
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
        docs = field_docs()
        entries, defaults = registry_entries()
        with VerticalScroll(id="form"):
            yield Static(Text(f"Saved to {settings_path()}. Environment variables SPECSEARCH_<FIELD> and "
                              "command-line options override them for one run.", style="dim"))
            for name in FIELD_NAMES:
                with Horizontal(classes="row"):
                    yield Label(TITLES.get(name, name.replace("_", " ")))
                    yield self._control(name, entries, defaults)
                    with Vertical():
                        yield Static(Text(docs.get(name, "")), classes="help")
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

    def _control(self, name: str, entries: list[Any], defaults: dict[str, Any]):
        value = getattr(self.settings, name)
        wid = f"set-{name}"
        if name in ROLES:
            default = defaults.get(name)
            fallback = "the small model as judge" if name == "prm" else "none set"
            blank = f"(default: {default.name})" if default is not None else f"(default: {fallback})"
            options = [(blank, "")] + [(f"{e.name}  [{e.role or '-'}]", e.name) for e in entries]
            if value and value not in {e.name for e in entries}:
                options.append((value, value))  # a path given by env, command line or an older save
            return Select(options, value=value or "", allow_blank=False, id=wid, classes="control")
        if name in CHOICES:
            return Select([(c, c) for c in CHOICES[name]], value=value, allow_blank=False, id=wid, classes="control")
        kind = field_type(name)
        if kind is bool:
            return Select(SWITCH, value="on" if value else "off", allow_blank=False, id=wid, classes="control")
        input_type = {int: "integer", float: "number"}.get(kind, "text")
        return Input("" if value is None else str(value), type=input_type, id=wid,  # type: ignore[arg-type]
                     placeholder=PLACEHOLDERS.get(name, "(automatic)") if value is None else "", classes="control")

    def read_form(self) -> Settings:
        values: dict[str, Any] = {}
        for name in FIELD_NAMES:
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
        self.dismiss(True)

    @on(Button.Pressed, "#back")
    def action_close(self) -> None:
        self.dismiss(False)

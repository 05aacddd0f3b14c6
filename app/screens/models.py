"""Model manager: local models (the Registry) with where each one's layers run (backend,
GPU layers: as loaded, else as planned), pull from the catalog, import a file,
assemble the offline pack, make a CPU-fast Q4_0 copy — each with a progress bar —
delete, set defaults.
Served models (models/served.py) are listed after the local ones, read-only: they
are added with `specsearch models served add` and chosen by name (--large NAME).
Every registry read and write runs in a worker; results come back as typed messages."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, ProgressBar, Static

from specsearch.core.errors import SpecSearchError
from specsearch.core.gguf_info import read_gguf_info
from specsearch.core.offload import Offload, planned_offload
from specsearch.models import Registry, assemble_offline_pack, catalog, pull
from specsearch.models.locations import models_dir
from specsearch.models.requantize import compare_speed, requantize
from specsearch.models.served import load_served
from specsearch.models.sizes import human_bytes

from ..messages import RegistryChanged, RegistryRead, TransferFinished, TransferProgress
from ..search_worker import describe_error
from ..services import AppServices
from ..settings import missing_message, resolve_models

CLI_HINT = ("In a shell: `specsearch models pack` registers the offline Qwen pair, "
            "`specsearch models pull NAME` downloads one, `specsearch models --help` lists the rest.")


def speed_note(source: str, copy: str) -> str:
    """The measured decoding speed of a requantized copy against its source, in a line."""
    speed = compare_speed(source, copy)
    verdict = "faster" if speed.faster else "no faster: highlight it and press d twice to delete it"
    return f"decodes {speed.before:.1f} → {speed.after:.1f} tokens/s here ({verdict})"


def offload_labels(entries: list[Any], loaded: dict[str, Offload]) -> dict[str, str]:
    """Model name -> where its layers are: as loaded (``loaded``: by file), else as its
    settings would put them ("… (when loaded)"), from the GGUF's layer count."""
    out = {}
    for e in entries:
        now = loaded.get(str(Path(e.path)))
        if now is not None:
            out[e.name] = now.label()
            continue
        try:
            n_layers = read_gguf_info(e.path).n_layers
        except (OSError, SpecSearchError):  # a missing or broken file: `models verify` says why
            n_layers = None
        requested = e.n_gpu_layers if isinstance(e.n_gpu_layers, int) else None  # else "auto"
        out[e.name] = f"{planned_offload(requested, n_layers).label()} (when loaded)" if n_layers else "?"
    return out


def highlighted_key(table: DataTable) -> Any | None:
    """The key of the row under ``table``'s cursor, or None when it has no rows."""
    if not table.row_count:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key


class ModelsScreen(Screen):
    BINDINGS = [
        Binding("s", "set_default('small')", "Small"),
        Binding("l", "set_default('large')", "Large"),
        Binding("r", "set_default('prm')", "PRM"),
        Binding("d,delete", "delete", "Delete"),
        Binding("p", "pull", "Pull"),
        Binding("i", "import_file", "Import"),
        Binding("k", "pack", "Pack"),
        Binding("q", "requantize", "CPU-fast copy"),
        Binding("escape", "cancel_transfer", "Stop download", show=False),
    ]
    DEFAULT_CSS = """
    ModelsScreen #models-banner { height: auto; padding: 0 1; background: $boost; }
    ModelsScreen #models-banner.missing { color: $warning; }
    ModelsScreen .section { padding: 0 1; text-style: bold; margin-top: 1; }
    ModelsScreen #local-table { height: 1fr; min-height: 4; }
    ModelsScreen #catalog-table { height: 1fr; min-height: 4; }
    ModelsScreen #import-path { display: none; }
    ModelsScreen #import-path.shown { display: block; }
    ModelsScreen #transfer-progress { padding: 0 1; height: 1; }
    ModelsScreen #transfer-status { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, services: AppServices, **kwargs) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.registry: Registry | None = None
        self.local: list[Any] = []
        self.catalog_items: list[Any] = []
        self.transfer: str | None = None  # what is being pulled / imported / assembled
        self._cancel: threading.Event | None = None
        self._armed_delete: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="models-banner")
        yield Label("Local models (s / l / r: default small / large / PRM · d: delete · i: import a .gguf · "
                    "k: offline pack · q: a Q4_0 copy, faster on a CPU)", classes="section")
        yield DataTable(id="local-table", cursor_type="row", zebra_stripes=True)
        yield Label("Catalog (p: pull the highlighted model; Esc stops a download, pulling again resumes)",
                    classes="section")
        yield DataTable(id="catalog-table", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="Path of a .gguf file to import (Enter imports, Esc closes)", id="import-path")
        yield ProgressBar(id="transfer-progress", show_eta=True)
        yield Static("", id="transfer-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "model manager"
        self.query_one("#local-table", DataTable).add_columns("name", "default for", "role", "size", "quant",
                                                              "backend", "path")
        self.query_one("#catalog-table", DataTable).add_columns("name", "role", "family", "size", "notes")
        self.query_one("#transfer-progress", ProgressBar).display = False
        self.action_reload()
        self.query_one("#local-table").focus()

    def on_screen_resume(self) -> None:
        self.action_reload()

    # ------------------------------------------------------------ listing ---
    def action_reload(self) -> None:
        self.read_registry()

    @work(thread=True, exclusive=True, group="registry-read")
    def read_registry(self) -> None:
        try:
            registry = Registry.load()
            entries = registry.entries()
            defaults = {r: e for r, e in registry.defaults().items() if e is not None}
            served = load_served()
        except Exception as exc:  # an unreadable registry: say so, keep the app usable
            self.post_message(RegistryRead(error=describe_error(exc)))
            return
        offload = offload_labels(entries, self.services.pool.offload_by_path())
        self.post_message(RegistryRead(registry, tuple(entries), defaults, offload=offload, served=served))

    @on(RegistryRead)
    def _registry_read(self, message: RegistryRead) -> None:
        local = self.query_one("#local-table", DataTable)
        cat = self.query_one("#catalog-table", DataTable)
        # A reload (every screen resume, each import, pull or delete) must not move the user's highlight: an action
        # taken right after it would act on another model (CI once pulled the catalog's first row instead).
        highlighted = {table: highlighted_key(table) for table in (local, cat)}
        local.clear()
        cat.clear()
        banner = self.query_one("#models-banner", Static)
        problem = missing_message(resolve_models(self.services.settings), self.services.settings.method)
        banner.set_class(problem is not None, "missing")
        self.registry, self.local, defaults = message.registry, list(message.entries), message.defaults or {}
        if message.error is not None:
            problem = f"{problem or ''} Model registry unreadable: {message.error}".strip()
        self.catalog_items = catalog()
        for e in self.local:
            roles = ", ".join(r for r, d in defaults.items() if d.name == e.name)
            # Text cells: names and fields read from registry.json and GGUF files are not markup
            local.add_row(Text(e.name), roles, Text(e.role or "–"), human_bytes(e.size_bytes),
                          Text(e.quantization or ""), Text((message.offload or {}).get(e.name, "?")), Text(e.path),
                          key=e.name)
        for name, served in (message.served or {}).items():  # after self.local's rows: no action picks them
            local.add_row(Text(name), "", "served", "–", "", "remote", Text(served.base_url), key=f"served:{name}")
        for c in self.catalog_items:
            cat.add_row(Text(c.name), c.role, c.family, human_bytes(c.size_bytes), Text(c.notes), key=c.name)
        for table, key in highlighted.items():
            if key is not None and key in table.rows:
                table.move_cursor(row=table.get_row_index(key), animate=False)
        if problem:
            banner.update(Text(f"⚠ {problem}"))
        else:
            banner.update(Text(f"{len(self.local)} local models in {models_dir()}. {CLI_HINT}"))

    def _highlighted(self, table_id: str, items: list[Any]) -> Any | None:
        table = self.query_one(table_id, DataTable)
        if not items or not 0 <= table.cursor_row < len(items):
            return None
        return items[table.cursor_row]

    # ------------------------------------------------------------ actions ---
    def action_set_default(self, role: str) -> None:
        entry = self._highlighted("#local-table", self.local)
        if entry is None or self.registry is None:
            self.notify("Highlight a local model first.")
            return
        registry = self.registry
        self.change_registry("Default not set", f"{entry.name} is now the default {role} model.",
                             lambda: registry.set_default(role, entry.name))

    def action_delete(self) -> None:
        entry = self._highlighted("#local-table", self.local)
        if entry is None or self.registry is None:
            return
        if self._armed_delete != entry.name:
            self._armed_delete = entry.name
            self.notify(f"Press d again to delete {entry.name}.", severity="warning")
            return
        self._armed_delete = None
        registry = self.registry
        self.change_registry("Not deleted", f"Deleted {entry.name}.", lambda: registry.remove(entry.name))

    @work(thread=True, group="registry-write")
    def change_registry(self, title: str, note: str, change: Callable[[], object]) -> None:
        try:
            change()
        except Exception as exc:  # e.g. a small model whose vocabulary the large one does not share
            self.post_message(RegistryChanged(title, error=describe_error(exc)))
            return
        self.post_message(RegistryChanged(title, note))

    @on(RegistryChanged)
    def _registry_changed(self, message: RegistryChanged) -> None:
        if message.error is not None:
            self.notify(message.error, title=message.title, severity="error", timeout=10)
            return
        self.notify(message.note)
        self.action_reload()

    # ---------------------------------------------------------- transfers ---
    def _begin(self, what: str) -> bool:
        if self.transfer is not None:
            self.notify(f"Busy with {self.transfer}.", severity="warning")
            return False
        self.transfer = what
        self._cancel = threading.Event()
        bar = self.query_one("#transfer-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.query_one("#transfer-status", Static).update(Text(f"{what}…"))
        return True

    def action_pull(self) -> None:
        item = self._highlighted("#catalog-table", self.catalog_items)
        if item is None:
            self.notify("Highlight a catalog model first.")
            return
        if self._begin(f"pulling {item.name}"):
            self.transfer_worker(self.transfer, lambda progress, cancel: [pull(item.name, on_progress=progress,
                                                                              cancel=cancel)])

    def action_pack(self) -> None:
        if self._begin("assembling the offline pack"):
            self.transfer_worker(self.transfer, lambda progress, cancel: assemble_offline_pack(
                on_progress=lambda _name, done, total: progress(done, total)))

    def action_requantize(self) -> None:
        """A Q4_0 copy of the highlighted model (`specsearch models requantize`): on a CPU,
        llama.cpp's repacked kernels decode it faster; it is registered beside the original."""
        entry = self._highlighted("#local-table", self.local)
        if entry is None:
            self.notify("Highlight a local model first.")
            return
        if self._begin(f"requantizing {entry.name} to Q4_0"):
            self.transfer_worker(self.transfer, lambda progress, cancel: [
                requantize(entry.name, "q4_0", on_progress=progress).entry],
                describe=lambda copies: speed_note(entry.path, copies[0].path))

    def action_import_file(self) -> None:
        box = self.query_one("#import-path", Input)
        box.add_class("shown")
        box.focus()

    @on(Input.Submitted, "#import-path")
    def _import_submitted(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        if not path:
            return
        event.input.value = ""
        event.input.remove_class("shown")
        self.query_one("#local-table").focus()
        registry = self.registry
        if self._begin(f"importing {path}"):  # the registry is read (if it was not) in the worker
            self.transfer_worker(self.transfer, lambda progress, cancel: [
                (registry or Registry.load()).import_file(path, on_progress=progress)])

    def action_cancel_transfer(self) -> None:
        box = self.query_one("#import-path", Input)
        if box.has_class("shown"):
            box.remove_class("shown")
            self.query_one("#local-table").focus()
        elif self._cancel is not None:
            self._cancel.set()

    @work(thread=True, exclusive=True, group="transfer")
    def transfer_worker(self, what: str, job: Callable[[Callable[[int, int], None], threading.Event], Any],
                        describe: Callable[[list[Any]], str] | None = None) -> None:
        cancel = self._cancel or threading.Event()
        last = [0.0]

        def progress(done: int, total: int) -> None:  # at most ~10 messages a second
            now = time.monotonic()
            if now - last[0] >= 0.1 or (total and done >= total):
                last[0] = now
                self.post_message(TransferProgress(what, done, total or None))

        try:
            entries = list(job(progress, cancel) or ())
            note = describe(entries) if describe is not None and entries else ""
        except Exception as exc:  # reported on the screen; the models folder stays consistent
            self.post_message(TransferFinished(what, error=describe_error(exc)))
            return
        self.post_message(TransferFinished(what, entries=tuple(entries), note=note))

    @on(TransferProgress)
    def _progress(self, message: TransferProgress) -> None:
        self.query_one("#transfer-progress", ProgressBar).update(total=message.total, progress=message.done)
        total = f" of {human_bytes(message.total)}" if message.total else ""
        self.query_one("#transfer-status", Static).update(
            Text(f"{message.what}: {human_bytes(message.done)}{total}"))

    @on(TransferFinished)
    def _finished(self, message: TransferFinished) -> None:
        self.transfer, self._cancel = None, None
        self.query_one("#transfer-progress", ProgressBar).display = False
        status = self.query_one("#transfer-status", Static)
        if message.error:
            status.update(Text(f"⚠ {message.what} failed: {message.error}"))
            self.notify(message.error, title="Model manager", severity="error", timeout=10)
        else:
            names = ", ".join(e.name for e in message.entries)
            note = f" · {message.note}" if message.note else ""
            status.update(Text(f"Done: {message.what}" + (f" → {names}" if names else "") + note))
            self.notify((f"Registered {names}." if names else "Done.") + (f" {message.note}" if message.note else ""))
        self.action_reload()

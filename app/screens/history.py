"""Saved conversations: browse, reopen, delete, export to Markdown / JSON."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ..formatting import one_line
from ..history import Summary

if TYPE_CHECKING:
    from ..app import SpecSearchApp


class HistoryScreen(Screen):
    BINDINGS = [
        Binding("o", "reopen", "Open (o/Enter)"),
        Binding("d,delete", "delete", "Delete"),
        Binding("m", "export('md')", "Export .md"),
        Binding("j", "export('json')", "Export .json"),
        Binding("r", "reload", "Refresh"),
    ]

    DEFAULT_CSS = """
    HistoryScreen DataTable { height: 1fr; }
    HistoryScreen #history-note { height: auto; padding: 0 1; color: $text-muted; }
    """

    app: "SpecSearchApp"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.summaries: list[Summary] = []
        self._armed_delete: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="history-note")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "history"
        table = self.query_one(DataTable)
        table.add_columns("when", "mode", "question", "answer", "status", "Q")
        self.action_reload()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.summaries = self.app.history.list()
        for s in self.summaries:
            table.add_row(
                time.strftime("%Y-%m-%d %H:%M", time.localtime(s.updated_at)),
                s.mode,
                Text(one_line(s.title, 60)),
                Text(one_line(s.answer, 20) if s.answer is not None else "–"),
                s.status,
                str(s.n_exchanges),
                key=s.id,
            )
        note = (f"{len(self.summaries)} conversations · Enter/o reopens · d deletes · m / j export Markdown / JSON"
                if self.summaries else "No conversations yet: every question you ask is saved here as it happens.")
        self.query_one("#history-note", Static).update(Text(note))
        table.focus()

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.summaries or table.cursor_row < 0 or table.cursor_row >= len(self.summaries):
            return None
        return self.summaries[table.cursor_row].id

    async def action_reopen(self) -> None:
        conv_id = self.selected_id()
        if conv_id is None:
            return
        try:
            conv = self.app.history.load(conv_id)
        except (OSError, ValueError, KeyError) as exc:
            self.notify(f"Cannot open {conv_id}: {exc}", severity="error")
            return
        await self.app.open_conversation(conv)

    @on(DataTable.RowSelected)
    async def _row_selected(self) -> None:
        await self.action_reopen()

    def action_delete(self) -> None:
        conv_id = self.selected_id()
        if conv_id is None:
            return
        if self._armed_delete != conv_id:
            self._armed_delete = conv_id
            self.notify("Press d again to delete this conversation.", severity="warning")
            return
        self._armed_delete = None
        self.app.history.delete(conv_id)
        self.notify("Conversation deleted.")
        self.action_reload()

    def action_export(self, fmt: str) -> None:
        conv_id = self.selected_id()
        if conv_id is None:
            return
        try:
            path = self.app.history.export(self.app.history.load(conv_id), fmt)  # type: ignore[arg-type]
        except (OSError, ValueError, KeyError) as exc:
            self.notify(f"Export failed: {exc}", severity="error")
            return
        self.notify(f"Exported to {path}", timeout=8)
        self.query_one("#history-note", Static).update(Text(f"Exported to {path}"))

"""Saved conversations: browse, reopen, delete, export to Markdown / JSON.

Every read and write of the history folder runs in a worker; the results come
back as typed messages (HistoryListed, ConversationLoaded, HistoryWritten)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from specsearch.core.text import one_line

from ..history import HistoryStore, Summary
from ..messages import ConversationLoaded, FilesSetAside, HistoryListed, HistoryWritten, OpenConversation
from ..services import AppServices


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

    def __init__(self, services: AppServices, **kwargs) -> None:
        super().__init__(**kwargs)
        self.store: HistoryStore = services.history
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

    # ----------------------------------------------------------- reading ---
    def action_reload(self) -> None:
        self.read_list()

    @work(thread=True, exclusive=True, group="history-list")
    def read_list(self) -> None:
        listing = self.store.scan()
        self.post_message(HistoryListed(tuple(listing.summaries)))
        if listing.set_aside:
            self.post_message(FilesSetAside(tuple(listing.set_aside)))

    @on(HistoryListed)
    def _listed(self, message: HistoryListed) -> None:
        message.stop()  # the app reads its question history from a message of the same kind
        table = self.query_one(DataTable)
        table.clear()
        self.summaries = list(message.summaries)
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

    def action_reopen(self) -> None:
        conv_id = self.selected_id()
        if conv_id is not None:
            self.read_conversation(conv_id)

    @work(thread=True, group="history-load")
    def read_conversation(self, conv_id: str) -> None:
        try:
            self.post_message(ConversationLoaded(conv_id, self.store.load(conv_id)))
        except (OSError, ValueError, KeyError) as exc:
            self.post_message(ConversationLoaded(conv_id, error=str(exc)))

    @on(ConversationLoaded)
    def _loaded(self, message: ConversationLoaded) -> None:
        message.stop()
        if message.error is not None:
            self.notify(f"Cannot open {message.conv_id}: {message.error}", severity="error")
        else:
            self.post_message(OpenConversation(message.conversation))  # the app switches to the chat

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_reopen()

    # ----------------------------------------------------------- writing ---
    def action_delete(self) -> None:
        conv_id = self.selected_id()
        if conv_id is None:
            return
        if self._armed_delete != conv_id:
            self._armed_delete = conv_id
            self.notify("Press d again to delete this conversation.", severity="warning")
            return
        self._armed_delete = None
        self.write("delete", lambda: self.store.delete(conv_id))

    def action_export(self, fmt: str) -> None:
        conv_id = self.selected_id()
        if conv_id is not None:
            self.write("export", lambda: self.store.export(self.store.load(conv_id), fmt))  # type: ignore[arg-type]

    @work(thread=True, group="history-write")
    def write(self, what: str, job: Callable[[], Path | None]) -> None:
        try:
            self.post_message(HistoryWritten(what, path=job()))
        except (OSError, ValueError, KeyError) as exc:
            self.post_message(HistoryWritten(what, error=str(exc)))

    @on(HistoryWritten)
    def _written(self, message: HistoryWritten) -> None:
        message.stop()
        if message.what == "delete":
            self.notify("Conversation deleted." if message.error is None else f"Delete failed: {message.error}",
                        severity="information" if message.error is None else "error")
            self.action_reload()
        elif message.error is not None:
            self.notify(f"Export failed: {message.error}", severity="error")
        else:
            self.notify(f"Exported to {message.path}", timeout=8)
            self.query_one("#history-note", Static).update(Text(f"Exported to {message.path}"))

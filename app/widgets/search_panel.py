"""Tree + selected-node detail + statistics of one search, as one widget."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Tree

from ..live import LiveSearch
from .node_detail import NodeDetail
from .reasoning_tree import ReasoningTree
from .stats_panel import StatsPanel


class SearchPanel(Vertical):
    DEFAULT_CSS = """
    SearchPanel { height: 1fr; }
    SearchPanel > .panel-title { width: 1fr; background: $primary-muted; padding: 0 1; text-style: bold; }
    SearchPanel > ReasoningTree { height: 1fr; min-height: 5; }
    """

    def __init__(self, title: str = "Reasoning tree", **kwargs) -> None:
        super().__init__(**kwargs)
        self.title_text = title
        self.live: LiveSearch | None = None
        self.status = ""

    def compose(self) -> ComposeResult:
        yield Label(self.title_text, classes="panel-title")
        yield ReasoningTree()
        yield NodeDetail()
        yield StatsPanel()

    @property
    def tree(self) -> ReasoningTree:
        return self.query_one(ReasoningTree)

    @property
    def stats(self) -> StatsPanel:
        return self.query_one(StatsPanel)

    def set_status(self, status: str) -> None:
        self.status = status
        title = self.title_text + (f" — {status}" if status else "")
        self.query_one(".panel-title", Label).update(Text(title))

    def show(self, live: LiveSearch | None, baseline_seconds: float | None = None) -> None:
        self.live = live
        self.tree.show(live)
        self.query_one(NodeDetail).show(None, None)
        self.stats.show(live, baseline_seconds)

    def sync(self) -> None:
        """A batch of events was applied to ``self.live``: update the widgets once."""
        self.tree.sync()
        self.stats.refresh_stats()
        cursor = self.tree.cursor_node
        if cursor is not None and cursor.data is not None:
            self.query_one(NodeDetail).show(self.live, cursor.data)

    @on(Tree.NodeHighlighted)
    @on(Tree.NodeSelected)
    def _show_node(self, event: Tree.NodeHighlighted) -> None:
        event.stop()
        self.query_one(NodeDetail).show(self.live, event.node.data)

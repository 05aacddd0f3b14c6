"""The live tree of thoughts: one Tree node per ThoughtNode (data = node id)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from specsearch.core.text import one_line
from specsearch.core.tree import ThoughtNode

from ..formatting import FLAGGED, node_label
from ..live import LiveSearch
from ..mathtext import readable

FATE_STYLES = {
    "accepted": "green",
    "rejected": "red dim",
    "regenerated": "yellow",
    "generated": "",
    "pending": "dim italic",
}


def styled_label(node: ThoughtNode, on_best_path: bool) -> Text:
    """The plain label (symbols carry the meaning) with colour on top."""
    text = Text(node_label(node, on_best_path))
    style = FATE_STYLES.get(node.fate, "")
    if node.selected:
        style += " bold"
    if on_best_path:
        style += " underline"
    if style.strip():
        text.stylize(style.strip())
    if node.flag:  # the wrong-arithmetic marker stands out whatever the fate colour
        text.highlight_words([FLAGGED], "bold red")
    return text


class ReasoningTree(Tree[int]):
    """Mirrors a :class:`LiveSearch`; ``sync`` applies only what changed."""

    DEFAULT_CSS = """
    ReasoningTree { background: $surface; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(Text("(no search yet)"), **kwargs)
        self.show_root = True
        self.guide_depth = 2
        self.live: LiveSearch | None = None
        self.items: dict[int, TreeNode[int]] = {}
        self._best: set[int] = set()

    def show(self, live: LiveSearch | None) -> None:
        """Display another search (or none) from scratch."""
        self.clear()
        self.items.clear()
        self._best = set()
        self.live = live
        if live is None:
            self.root.set_label(Text("(no search yet)"))
            return
        self.root.set_label(Text("? " + one_line(readable(live.question, markdown=False), 70)))
        self.root.expand()
        live.take_new()
        live.take_dirty()
        for node_id in sorted(live.nodes):
            self._add(live.nodes[node_id])
        self._relabel_best()

    def sync(self) -> None:
        """Add new nodes, relabel changed ones (called at most ~15 times a second)."""
        live = self.live
        if live is None:
            return
        for node_id in live.take_new():
            if node_id in self.items:
                self.items[node_id].set_label(styled_label(live.nodes[node_id], node_id in self._best))
            else:
                self._add(live.nodes[node_id])
        for node_id in live.take_dirty():
            if node_id in self.items:
                self.items[node_id].set_label(styled_label(live.nodes[node_id], node_id in self._best))
        self._relabel_best()

    def _add(self, node: ThoughtNode) -> None:
        parent = self.items.get(node.parent_id) if node.parent_id is not None else self.root
        if parent is None:  # orphan (should not happen): hang it off the root
            parent = self.root
        parent.allow_expand = True
        parent.expand()
        self.items[node.id] = parent.add(styled_label(node, node.id in self._best), data=node.id,
                                         expand=True, allow_expand=False)

    def _relabel_best(self) -> None:
        live = self.live
        best = live.best_path_ids if live is not None else set()
        if best == self._best or live is None:
            return
        changed, self._best = best ^ self._best, best
        for node_id in changed:
            if node_id in self.items and node_id in live.nodes:
                self.items[node_id].set_label(styled_label(live.nodes[node_id], node_id in best))

    def labels(self) -> dict[int, str]:
        """Plain label text per thought id (what tests compare with the record)."""
        return {node_id: item.label.plain for node_id, item in self.items.items()}

    def parent_of(self, node_id: int) -> int | None:
        parent = self.items[node_id].parent
        return parent.data if parent is not None and parent is not self.root else None

"""The selected thought in full, and why it was kept or rejected."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from ..formatting import FATE_NAMES, LEGEND, explain, node_symbols, printable
from ..live import LiveSearch


class NodeDetail(VerticalScroll, can_focus=False):
    DEFAULT_CSS = """
    NodeDetail { height: auto; max-height: 12; border-top: solid $primary-muted; padding: 0 1; }
    NodeDetail > Static { width: 1fr; }
    """

    def compose(self):
        yield Static(Text(LEGEND, style="dim"), id="detail-text")

    def show(self, live: LiveSearch | None, node_id: int | None) -> None:
        static = self.query_one("#detail-text", Static)
        if live is None or node_id is None or node_id not in live.nodes:
            static.update(Text(LEGEND, style="dim"))
            return
        node = live.nodes[node_id]
        beam = live.config.get("beam_width")
        step_done = live.done or any(s.step == node.depth and s.selected for s in live.steps)
        head = Text()
        head.append(f"{node_symbols(node)} #{node.id} · step {node.depth} · {node.source} model · "
                    f"{FATE_NAMES.get(node.fate, node.fate)} · {node.n_tokens} tokens", style="bold")
        if node.score is not None:
            head.append(f" · score {node.score:.3f}")
        if node.beta is not None:
            head.append(f" · β {node.beta:.3f}")
        body = Text()
        body.append_text(head)
        body.append("\n")
        body.append(explain(node, live.nodes, beam, step_done), style="italic")
        body.append("\n\n")
        body.append(printable(node.text) or "(empty thought)")
        static.update(body)

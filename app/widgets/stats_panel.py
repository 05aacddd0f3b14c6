"""Statistics of a search, updating while it runs, with sparklines of β and scores, and
where each model runs (backend, layers on the GPU)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline, Static

from specsearch.core.prm_info import prm_label, prm_of

from ..formatting import stats_rows
from ..live import LiveSearch


MODEL_ROWS = {"prm": "PRM"}


def value_range(values: list[float]) -> str:
    """'0.59–0.74, last 0.61'; with more digits (up to 4) when the ends would round alike, as
    a learned head's scores and β, crowded near its ceiling, do ('0.9766–0.9774, last 0.9774')."""
    if not values:
        return "–"
    lo, hi = min(values), max(values)
    digits = next((d for d in (2, 3, 4) if f"{lo:.{d}f}" != f"{hi:.{d}f}"), 4 if lo != hi else 2)
    return f"{lo:.{digits}f}–{hi:.{digits}f}, last {values[-1]:.{digits}f}"


class StatsPanel(Vertical):
    DEFAULT_CSS = """
    StatsPanel { height: auto; border-top: solid $primary-muted; padding: 0 1; }
    StatsPanel #stats-table { height: auto; }
    StatsPanel Label { color: $text-muted; }
    StatsPanel Sparkline { height: 1; margin-bottom: 0; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.live: LiveSearch | None = None
        self.baseline_seconds: float | None = None
        self.rows: dict[str, str] = {}  # what the table shows, label -> value

    def compose(self) -> ComposeResult:
        yield Static(Text("No search yet.", style="dim"), id="stats-table")
        yield Label("β per step: –", id="beta-label")
        yield Sparkline([], id="beta-spark")
        yield Label("PRM scores: –", id="score-label")
        yield Sparkline([], id="score-spark")

    def show(self, live: LiveSearch | None, baseline_seconds: float | None = None) -> None:
        self.live = live
        self.baseline_seconds = baseline_seconds
        self.refresh_stats()

    def refresh_stats(self) -> None:
        """Redraw everything (a batch arrived, or the clock ticked)."""
        live = self.live
        table_widget = self.query_one("#stats-table", Static)
        if live is None:
            self.rows = {}
            table_widget.update(Text("No search yet.", style="dim"))
            self.query_one("#beta-spark", Sparkline).data = []
            self.query_one("#score-spark", Sparkline).data = []
            self.query_one("#beta-label", Label).update("β per step: –")
            self.query_one("#score-label", Label).update("PRM scores: –")
            return
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        self.rows = dict(stats_rows(live.method, live.stats, live.elapsed, self.baseline_seconds))
        prm = prm_of(live.config)  # recorded by the search (absent in records older than it)
        if prm is not None:
            self.rows["reward model"] = prm_label(prm)
        for role, where in live.models.items():  # backend and GPU layers, once the models are loaded
            self.rows[f"{MODEL_ROWS.get(role, role)} model"] = where
        for label, value in self.rows.items():
            table.add_row(label, Text(value))
        table_widget.update(table)
        self.query_one("#beta-spark", Sparkline).data = list(live.betas)
        self.query_one("#score-spark", Sparkline).data = list(live.scores)
        self.query_one("#beta-label", Label).update(Text(f"β per step: {value_range(live.betas)}"))
        self.query_one("#score-label", Label).update(Text(f"PRM scores ({len(live.scores)}): {value_range(live.scores)}"))

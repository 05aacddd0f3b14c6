"""The search as the UI knows it so far, built from core events.

:class:`LiveSearch` applies events in order and remembers which nodes changed
since the widgets last looked (``take_dirty``), so a batch of hundreds of
events costs one widget refresh.  When the run ends, :meth:`LiveSearch.finish`
replaces what was pieced together with the search's own result (the screens
get it once, in the run's terminal message; the core's ``SearchFinished``
event is not forwarded to the UI).  No Textual imports here.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterable

from specsearch.core import events as ev
from specsearch.core.tree import SearchResult, SearchStats, StepRecord, ThoughtNode, path_to


class LiveSearch:
    def __init__(self, question: str = "", method: str = "") -> None:
        self.question = question
        self.method = method
        self.config: dict[str, Any] = {}
        self.nodes: dict[int, ThoughtNode] = {}
        self.steps: list[StepRecord] = []
        self.betas: list[float] = []  # β per step, where the step has one
        self.scores: list[float] = []  # every PRM score, in arrival order
        self.stats = SearchStats()
        self.best_beam: int | None = None  # best node of the latest beam selection
        self.result: SearchResult | None = None
        self.models: dict[str, str] = {}  # role -> where its layers are ("CPU · 0/25 layers on GPU")
        self.started = time.monotonic()
        self.finished_at: float | None = None
        self._dirty: set[int] = set()
        self._new: list[int] = []
        self.stats_changed = False

    # ------------------------------------------------------------ events ---
    def apply(self, events: Iterable[ev.SearchEvent]) -> None:
        for event in events:
            self._apply(event)

    def _apply(self, e: ev.SearchEvent) -> None:
        if isinstance(e, ev.SearchStarted):
            self.question, self.method, self.config = e.question, e.method, dict(e.config)
        elif isinstance(e, ev.StepStarted):
            self.steps.append(StepRecord(e.step, e.beta, first_node=len(self.nodes)))
            if e.beta is not None:
                self.betas.append(e.beta)
        elif isinstance(e, (ev.ThoughtDrafted, ev.ThoughtRegenerated)):
            node = dataclasses.replace(e.node)  # a copy: the search keeps mutating its own
            self.nodes[node.id] = node
            self._new.append(node.id)
            if self.steps:
                (self.steps[-1].regenerated if isinstance(e, ev.ThoughtRegenerated) else self.steps[-1].drafted).append(node.id)
        elif isinstance(e, ev.ThoughtScored):
            node = self.nodes.get(e.node_id)
            if node is not None:
                node.score, node.flag = e.score, e.flag
                self.scores.append(e.score)
                self._dirty.add(node.id)
        elif isinstance(e, (ev.ThoughtAccepted, ev.ThoughtRejected)):
            node = self.nodes.get(e.node_id)
            if node is not None:
                accepted = isinstance(e, ev.ThoughtAccepted)
                node.fate, node.score, node.beta = ("accepted" if accepted else "rejected"), e.score, e.beta
                self._dirty.add(node.id)
                if self.steps:
                    (self.steps[-1].accepted if accepted else self.steps[-1].rejected).append(node.id)
        elif isinstance(e, ev.BeamsSelected):
            for node_id in e.selected_ids:
                if node_id in self.nodes:
                    self.nodes[node_id].selected = True
                    self._dirty.add(node_id)
            for node_id in e.finished_ids:
                if node_id in self.nodes:
                    self.nodes[node_id].finished = True
            if self.steps:
                self.steps[-1].selected = list(e.selected_ids)
            # ranked by path score: the first kept thought leads the search
            self.best_beam = e.selected_ids[0] if e.selected_ids else self.best_beam
        elif isinstance(e, ev.ValuesBackedUp):
            for node_id, visits in e.visits.items():
                node = self.nodes.get(node_id)
                if node is not None:
                    node.visits, node.value = visits, e.values[node_id]
                    self._dirty.add(node_id)
            if self.steps:
                self.steps[-1].visits.update(e.visits)
                self.steps[-1].values.update(e.values)
        elif isinstance(e, ev.StatsUpdated):
            self.stats = e.stats
            self.stats_changed = True
        elif isinstance(e, ev.DraftsTried):
            if self.steps:
                self.steps[-1].trial = True
        elif isinstance(e, ev.MethodSwitched):  # shown now, not after the step's statistics
            self.stats = dataclasses.replace(self.stats, switches=self.stats.switches + [e.record()])
            self.stats_changed = True

    def finish(self, result: SearchResult) -> None:
        """Replace the pieced-together tree with the search's own record."""
        self.result = result
        self.question, self.method, self.config = result.question, result.method, dict(result.config)
        old = set(self.nodes)
        self.nodes = {n.id: dataclasses.replace(n) for n in result.nodes}
        self._new.extend(i for i in self.nodes if i not in old)
        self._dirty.update(old & set(self.nodes))
        self.steps = list(result.steps)
        self.betas = [s.beta for s in result.steps if s.beta is not None]
        self.scores = [n.score for n in result.nodes if n.score is not None]
        self.stats = result.stats
        self.stats_changed = True
        self.finished_at = time.monotonic()

    # ----------------------------------------------------------- queries ---
    @property
    def done(self) -> bool:
        """Finished, cancelled, or loaded from a record."""
        return self.finished_at is not None

    def stop(self) -> None:
        """The search ended without a result (an error): stop the clock."""
        if self.finished_at is None:
            self.finished_at = time.monotonic()
            self.stats.wall_seconds = self.finished_at - self.started

    @property
    def elapsed(self) -> float:
        return self.stats.wall_seconds if self.done else time.monotonic() - self.started

    def take_new(self) -> list[int]:
        """Ids of nodes added since the last call (parents before children)."""
        new, self._new = sorted(self._new), []
        return new

    def take_dirty(self) -> set[int]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    def path(self, node_id: int | None) -> list[ThoughtNode]:
        return path_to(self.nodes, node_id)

    @property
    def best_path_ids(self) -> set[int]:
        leaf = self.result.best_leaf_id if self.result is not None else None
        return {n.id for n in self.path(leaf)} if leaf is not None else set()

    def best_so_far(self) -> list[ThoughtNode]:
        """The path the answer would take now: the chosen leaf when done, else the leading beam."""
        leaf = self.result.best_leaf_id if self.result is not None else self.best_beam
        return self.path(leaf)

    def snapshot(self) -> SearchResult:
        """The search's own result when done, else the tree so far as a record with no chosen
        answer (what history keeps of a search that has not returned)."""
        if self.result is not None:
            return self.result
        return SearchResult(
            question=self.question,
            method=self.method,
            config=dict(self.config),
            nodes=[dataclasses.replace(self.nodes[i]) for i in sorted(self.nodes)],
            steps=[dataclasses.replace(s) for s in self.steps],
            best_leaf_id=None,
            solution="",
            answer=None,
            stats=dataclasses.replace(self.stats),
        )

    @classmethod
    def from_result(cls, result: SearchResult, partial: bool = False) -> "LiveSearch":
        """A saved search, e.g. from history; ``partial``: a snapshot of one that had not
        returned (it has no chosen leaf)."""
        live = cls(result.question, result.method)
        live.finish(result)
        if partial:
            live.result = None
        return live

"""Mutable state of one search: the tree being built, statistics, events.

Each published statistics snapshot carries the cost model's view of the search
so far (core.cost_model.search_costs): its predicted ar time and ceiling time.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

from .cost_model import search_costs
from .engine import GenerateOutput
from .generation import GenerateStats
from .events import CancelToken, SearchEvent, StatsUpdated
from .tree import SearchStats, StepRecord, ThoughtNode

if TYPE_CHECKING:  # core.config imports this module (config -> methods -> generators -> here)
    from .config import SearchConfig


@dataclass
class Beam:
    """A partial solution: the node it ends at and the tokens that condition its next step."""

    node_id: int | None
    tokens: list[int]
    steps: list[str] = field(default_factory=list)
    path_score: float | None = None


@dataclass
class Candidate:
    """A new thought for a beam, with what the next step will condition on."""

    node: ThoughtNode
    beam: Beam
    tokens: list[int]  # the thought's generated tokens
    finish_reason: str
    logprobs: list[float] | None = None  # the writer's log-probs of ``tokens``, when kept


class SearchState:
    def __init__(
        self,
        question: str,
        config: SearchConfig,
        emit: Callable[[SearchEvent], None],
        cancel: CancelToken | None,
    ) -> None:
        self.question = question
        self.config = config
        self.emit = emit
        self.cancel = cancel
        self.nodes: list[ThoughtNode] = []
        self.steps: list[StepRecord] = []
        self.stats = SearchStats()
        self.t0 = time.perf_counter()
        # This step's token budget per thought: max_step_tokens, less when the context is nearly full.
        self.step_tokens = config.max_step_tokens
        # Added to the child indices of the next expand: MCTS expands one depth several
        # times, and numbers each expansion's children apart so they draw differently.
        self.first_child = 0
        # A served model's failure (core.remote_client.RemoteError): the search ends as on a cancel.
        self.error: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.error is not None or bool(self.cancel and self.cancel.cancelled)

    @property
    def step(self) -> StepRecord:
        return self.steps[-1]

    def seed(self, depth: int, child_index: int) -> int:
        """The sampling seed of child ``child_index`` (after ``first_child``) at ``depth``: the
        same in every method, so the same child draws the same way whoever generates it."""
        return (self.config.seed * 1_000_003 + depth * 10_007 + self.first_child + child_index) & 0x7FFFFFFF

    def new_node(self, beam: Beam, depth: int, text: str, n_tokens: int, source: str, fate: str,
                 seconds: float, replaces: int | None = None) -> ThoughtNode:
        node = ThoughtNode(
            id=len(self.nodes), parent_id=beam.node_id, depth=depth, text=text, n_tokens=n_tokens,
            source=source, fate=fate, seconds=seconds, replaces=replaces,  # type: ignore[arg-type]
        )
        self.nodes.append(node)
        return node

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.stats.phase_seconds[name] = self.stats.phase_seconds.get(name, 0.0) + dt
            self.step.phase_seconds[name] = self.step.phase_seconds.get(name, 0.0) + dt

    def count_generation(self, model: str, out: GenerateOutput) -> None:
        self.stats.tokens[model] = self.stats.tokens.get(model, 0) + out.stats.generated_tokens
        self.stats.model_seconds[model] = self.stats.model_seconds.get(model, 0.0) + out.stats.wall_seconds
        self.stats.tokens_drafted += out.stats.drafted
        self.stats.tokens_accepted += out.stats.accepted
        self.stats.target_passes += out.stats.target_passes
        self.step.calls.append({"model": model, "batch": len(out.generations), "tokens": out.stats.generated_tokens,
                                "prefill": out.stats.prompt_tokens - out.stats.reused_tokens,
                                "seconds": out.stats.wall_seconds})
        if out.stats.remote_requests:
            self._count_remote(model, out.stats)

    def _count_remote(self, model: str, s: GenerateStats) -> None:
        r = self.stats.remote.setdefault(model, {"requests": 0, "seconds": 0.0, "timed_requests": 0,
                                                 "server_seconds": 0.0})
        r["requests"] += s.remote_requests
        r["seconds"] += s.remote_seconds
        r["timed_requests"] += s.server_timed_requests
        r["server_seconds"] += s.server_seconds
        if r["timed_requests"] == r["requests"]:  # a split only when every request was timed
            r["network_queue_seconds"] = max(0.0, r["seconds"] - r["server_seconds"])

    def publish_stats(self) -> None:
        self.stats.wall_seconds = time.perf_counter() - self.t0
        costs = search_costs(self.nodes, self.steps, self.stats.wall_seconds)
        self.stats.predicted_ar_seconds, self.stats.ceiling_seconds = costs.predicted_ar_seconds, costs.ceiling_seconds
        self.emit(StatsUpdated(_snapshot(self.stats)))


def _snapshot(stats: SearchStats) -> SearchStats:
    """A copy listeners may keep: the dict fields are copied, the rest are immutable."""
    return dataclasses.replace(stats, phase_seconds=dict(stats.phase_seconds), tokens=dict(stats.tokens),
                               model_seconds=dict(stats.model_seconds), switches=list(stats.switches),
                               remote={m: dict(r) for m, r in stats.remote.items()})

"""The search tree: thought nodes, per-step records, statistics, the result.

Each record reads itself back from its ``to_dict()`` (``from_dict``), so a saved
search (history, ``--json`` output) is a :class:`SearchResult` again; fields a
newer version added and an older record lacks take their defaults.

A search that reaches the context limit still answers: a node that ended its
beam for want of room says so (``finish_reason == "context"``), and a node the
PRM scored on a shortened path (the oldest steps left out) has ``prm_trimmed``.

An MCTS search (``config["search"] == "mcts"``) also records each node's visits
and mean value, and per step the ones its backups changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

Source = Literal["small", "large"]
# generated:   made by the method's own generator (ar/sps/small, SpecSearch's first step)
# accepted:    a small-model draft whose score reached the threshold
# rejected:    a small-model draft below the threshold (discarded)
# regenerated: a large-model thought that replaced a rejected draft
Fate = Literal["pending", "generated", "accepted", "rejected", "regenerated"]
# eos:     the model ended its output
# answer:  the thought states a final answer
# depth:   the search's last step (max_depth)
# context: no room for another step in the context (the thought may be cut short)
FinishReason = Literal["eos", "answer", "depth", "context"]


@dataclass
class ThoughtNode:
    id: int
    parent_id: int | None  # None: a first step, child of the question
    depth: int  # 1-based step number
    text: str
    n_tokens: int
    source: Source
    fate: Fate = "pending"
    score: float | None = None  # PRM score of this step, in [0, 1]
    path_score: float | None = None  # aggregated over the path (last/min/prod)
    beta: float | None = None  # threshold in force when this thought was judged
    selected: bool = False  # kept in the beam
    finished: bool = False  # ends a solution (end-of-generation or a final answer)
    replaces: int | None = None  # for regenerated thoughts: the rejected draft's id
    seconds: float = 0.0  # generation wall time of the batch that produced it
    flag: str | None = None  # why a check overrode the PRM ("20 − 12 = 8, not 9"); None: nothing found
    finish_reason: FinishReason | None = None  # why a finished node ends its solution
    prm_trimmed: bool = False  # the PRM read a shortened path: the whole one did not fit its context
    visits: int | None = None  # MCTS: how often the search passed through it (None: not an MCTS search)
    value: float | None = None  # MCTS: the mean of the values backed up through it
    trial: bool = False  # auto's trial: a draft judged only to measure acceptance, never a beam candidate

    @property
    def kept(self) -> bool:
        """A thought the search kept: neither a rejected draft nor a trial's draft."""
        return self.fate != "rejected" and not self.trial

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ThoughtNode":
        return cls(**_known_fields(cls, data))


def path_to(nodes: Mapping[int, ThoughtNode], node_id: int | None) -> list[ThoughtNode]:
    """Nodes from the first step down to ``node_id``, by parent links.  The walk stops at an
    id ``nodes`` lacks (a tree pieced together from events may not have every node yet)."""
    out: list[ThoughtNode] = []
    while node_id is not None and node_id in nodes:
        node = nodes[node_id]
        out.append(node)
        node_id = node.parent_id
    return out[::-1]


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _known_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``data`` that are fields of dataclass ``cls`` (derived values are dropped)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class StepRecord:
    step: int
    beta: float | None
    drafted: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    regenerated: list[int] = field(default_factory=list)
    selected: list[int] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    # MCTS: visits and value of each node this step's backups changed, as they stood after it
    visits: dict[int, int] = field(default_factory=dict)
    values: dict[int, float] = field(default_factory=dict)
    generator: str = ""  # the method whose generator wrote the step (auto switches between them)
    # auto's trial: drafts were judged only to measure acceptance; the step's thoughts are the large model's
    trial: bool = False
    # each generate call of the step: model (small/large), batch, tokens, prefill (prompt tokens
    # not served from the KV cache), seconds -- what core.cost_model fits
    calls: list[dict[str, Any]] = field(default_factory=list)
    # id of the first node the step made (its nodes run up to the next step's first): MCTS makes
    # several steps at one depth, so depth alone does not say which step wrote a node
    first_node: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StepRecord":
        known = _known_fields(cls, data)
        for name in ("visits", "values"):  # JSON made the node ids strings
            if name in known:
                known[name] = {int(k): v for k, v in known[name].items()}
        return cls(**known)


@dataclass
class SearchStats:
    wall_seconds: float = 0.0
    # draft / score / regenerate / select (baselines: generate / score / select)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=lambda: {"small": 0, "large": 0})
    model_seconds: dict[str, float] = field(default_factory=lambda: {"small": 0.0, "large": 0.0})
    thoughts_drafted: int = 0
    thoughts_accepted: int = 0
    thoughts_rejected: int = 0
    # auto's trials: drafts judged only to measure acceptance, never kept (not in the counts above)
    trial_drafts_accepted: int = 0
    trial_drafts_rejected: int = 0
    thoughts_regenerated: int = 0
    tokens_drafted: int = 0  # token-level speculative decoding
    tokens_accepted: int = 0
    target_passes: int = 0
    # Served models (core.remote_model), per role: requests, seconds (their summed wall
    # time) and, when the server reports its own timings for every request (llama-server),
    # server_seconds and network_queue_seconds (the rest: network, queueing, parsing).
    remote: dict[str, dict[str, float]] = field(default_factory=dict)
    # The cost model's view (core.cost_model): this search's steps at ar's predicted
    # cost, and at draft cost with every draft accepted and scoring free.
    predicted_ar_seconds: float | None = None
    ceiling_seconds: float | None = None
    measured_speedup: float | None = None  # ar's measured time / this search's, when an ar baseline ran
    switches: list[dict[str, Any]] = field(default_factory=list)  # auto's MethodSwitched events, as dicts

    @property
    def predicted_speedup(self) -> float | None:
        """Predicted ar time / this search's time."""
        return _ratio(self.predicted_ar_seconds, self.wall_seconds)

    @property
    def ceiling_speedup(self) -> float | None:
        """Predicted ar time / the ceiling time (every draft accepted, scoring free)."""
        return _ratio(self.predicted_ar_seconds, self.ceiling_seconds)

    @property
    def thought_acceptance_rate(self) -> float | None:
        judged = self.thoughts_accepted + self.thoughts_rejected
        return self.thoughts_accepted / judged if judged else None

    def count_verdict(self, accepted: bool, trial: bool) -> None:
        """Count one judged draft: the search's own, or a trial's (judged only, never kept)."""
        if trial:
            self.trial_drafts_accepted += accepted
            self.trial_drafts_rejected += not accepted
        else:
            self.thoughts_accepted += accepted
            self.thoughts_rejected += not accepted

    @property
    def trial_acceptance_rate(self) -> float | None:
        judged = self.trial_drafts_accepted + self.trial_drafts_rejected
        return self.trial_drafts_accepted / judged if judged else None

    @property
    def token_acceptance_rate(self) -> float | None:
        return self.tokens_accepted / self.tokens_drafted if self.tokens_drafted else None

    def tokens_per_second(self, model: str) -> float | None:
        secs = self.model_seconds.get(model, 0.0)
        return self.tokens.get(model, 0) / secs if secs > 0 else None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["thought_acceptance_rate"] = self.thought_acceptance_rate
        out["trial_acceptance_rate"] = self.trial_acceptance_rate
        out["token_acceptance_rate"] = self.token_acceptance_rate
        out["tokens_per_second"] = {m: self.tokens_per_second(m) for m in ("small", "large")}
        out["predicted_speedup"] = self.predicted_speedup
        out["ceiling_speedup"] = self.ceiling_speedup
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "SearchStats":
        """The inverse of to_dict() (the derived rates are recomputed, not read)."""
        return cls(**_known_fields(cls, data or {}))


@dataclass
class SearchResult:
    question: str
    method: str
    config: dict[str, Any]
    nodes: list[ThoughtNode]
    steps: list[StepRecord]
    best_leaf_id: int | None
    solution: str  # the best path's thoughts joined with the delimiter
    answer: str | None  # extracted final answer, if any
    stats: SearchStats
    cancelled: bool = False
    error: str | None = None  # why the search stopped early (a served model failed); the tree so far is kept

    @property
    def search(self) -> str:
        """The strategy that searched the tree (records from before strategies: beam)."""
        return self.config.get("search", "beam")

    def node(self, node_id: int) -> ThoughtNode:
        return self.nodes[node_id]

    def path(self, node_id: int | None) -> list[ThoughtNode]:
        """Nodes from the first step down to ``node_id``."""
        return path_to({n.id: n for n in self.nodes}, node_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "method": self.method,
            "config": self.config,
            "nodes": [n.to_dict() for n in self.nodes],
            "steps": [s.to_dict() for s in self.steps],
            "best_leaf_id": self.best_leaf_id,
            "solution": self.solution,
            "answer": self.answer,
            "stats": self.stats.to_dict(),
            "cancelled": self.cancelled,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SearchResult":
        """The inverse of to_dict(); tolerant of records saved by older versions."""
        return cls(
            question=data.get("question", ""),
            method=data.get("method", ""),
            config=dict(data.get("config") or {}),
            nodes=[ThoughtNode.from_dict(n) for n in data.get("nodes", [])],
            steps=[StepRecord.from_dict(s) for s in data.get("steps", [])],
            best_leaf_id=data.get("best_leaf_id"),
            solution=data.get("solution", ""),
            answer=data.get("answer"),
            stats=SearchStats.from_dict(data.get("stats")),
            cancelled=bool(data.get("cancelled", False)),
            error=data.get("error"),
        )

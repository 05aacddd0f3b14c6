"""A thought-level cost model, measured from the search's own timings.

Each search step leaves in the tree what it cost: every thought node records
its tokens and its share of the wall time of the batch that wrote it (so a
step's nodes of one model sum to that model's call), and each StepRecord
records its phase times (score, select, ...) and its accepted/rejected drafts.
:func:`step_timings` reads those back per step; :class:`CostModel` fits on them

* per model (small, large), the time of one batched decode step at batch size
  n, ``a + b*n`` (weighted least squares over the calls; with one batch size
  seen, or a fit that is not increasing, a constant tokens/s throughput),
  and the mean tokens of a thought;
* PRM scoring time per thought scored;
* the fixed per-step overhead (the select phase);
* the drafts' acceptance rate as a Beta(1, 1) posterior over the judged drafts
  (older judgements weigh ``decay`` less per later step that judged drafts),
  with a Wilson 95 % interval;

and predicts one step of N thoughts under ar (the large model writes them all)
and under specsearch (the small model drafts all, the PRM scores them, the
large model rewrites the rejected ~Binomial(N, 1-p) and they are scored too):

    T_ar(N) = gen_large(N) + score(N) + overhead
    T_ss(N) = gen_small(N) + score(N) + E[gen_large(K)] + (1-p) N score1 + overhead

:func:`search_costs` turns a whole search into ``predicted_ar_seconds`` (its
steps at the predicted ar cost, plus the time outside steps) and
``ceiling_seconds`` (every thought at draft cost, scoring free): the predicted
speed-up is predicted_ar_seconds / wall, the ceiling predicted_ar_seconds /
ceiling_seconds.  Pure Python: no engine, no numpy needed.

Limits: the large model's regeneration (speculative decoding) and plain ar
decoding are pooled as one "large" throughput; the thought lengths of an ar
search are taken as those the large model wrote here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .tree import StepRecord, ThoughtNode

Z95 = 1.959963984540054  # two-sided 95 % normal quantile (Wilson interval)


@dataclass(frozen=True)
class Call:
    """One batched generate call: ``batch`` thoughts, ``tokens`` in all, ``seconds`` of wall time."""

    batch: int
    tokens: int
    seconds: float


@dataclass
class StepTiming:
    """What one search step cost, per model and phase."""

    step: int
    generator: str = ""  # the generator that wrote it (StepRecord.generator)
    calls: dict[str, Call] = field(default_factory=dict)  # model (small, large) -> its call in this step
    thoughts: int = 0  # child slots of the step (drafts, or thoughts written whole)
    scored: int = 0  # thoughts the PRM scored
    score_seconds: float = 0.0
    overhead_seconds: float = 0.0  # select
    accepted: int = 0
    rejected: int = 0

    @property
    def seconds(self) -> float:
        """The step's measured time: its calls, scoring and overhead."""
        return sum(c.seconds for c in self.calls.values()) + self.score_seconds + self.overhead_seconds


def step_timings(nodes: Sequence[ThoughtNode], steps: Sequence[StepRecord]) -> list[StepTiming]:
    """Per-step timings of a search tree (live or saved), in step order."""
    by_depth: dict[int, list[ThoughtNode]] = {}
    for node in nodes:
        by_depth.setdefault(node.depth, []).append(node)
    out = []
    for record in steps:
        step_nodes = by_depth.get(record.step, [])
        timing = StepTiming(record.step, record.generator)
        for model in ("small", "large"):
            written = [n for n in step_nodes if n.source == model]
            if written:
                timing.calls[model] = Call(len(written), sum(n.n_tokens for n in written),
                                           sum(n.seconds for n in written))
        timing.thoughts = sum(1 for n in step_nodes if n.fate != "regenerated")
        timing.scored = sum(1 for n in step_nodes if n.score is not None)
        timing.score_seconds = record.phase_seconds.get("score", 0.0)
        timing.overhead_seconds = record.phase_seconds.get("select", 0.0)
        timing.accepted, timing.rejected = len(record.accepted), len(record.rejected)
        out.append(timing)
    return out


@dataclass(frozen=True)
class Acceptance:
    """Beta(1 + accepted, 1 + rejected) posterior of the draft acceptance rate."""

    accepted: float = 0.0
    rejected: float = 0.0

    @property
    def judged(self) -> float:
        return self.accepted + self.rejected

    @property
    def mean(self) -> float:
        return (self.accepted + 1.0) / (self.judged + 2.0)

    @property
    def std(self) -> float:
        a, b = self.accepted + 1.0, self.rejected + 1.0
        return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))

    def wilson(self, z: float = Z95) -> tuple[float, float]:
        """The Wilson score interval of the observed rate ((0, 1) with nothing judged)."""
        n = self.judged
        if n <= 0:
            return 0.0, 1.0
        phat = self.accepted / n
        centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
        return max(0.0, centre - half), min(1.0, centre + half)


class DecodeCost:
    """Time of a model's batched generate call: decode steps of ``a + b*batch`` seconds."""

    def __init__(self, calls: Iterable[Call]) -> None:
        calls = [c for c in calls if c.tokens > 0 and c.seconds > 0]
        self.tokens = sum(c.tokens for c in calls)
        self.seconds = sum(c.seconds for c in calls)
        self.thoughts = sum(c.batch for c in calls)
        self.a, self.b = _fit_step_time(calls)

    @property
    def known(self) -> bool:
        return self.tokens > 0

    @property
    def thought_tokens(self) -> float:
        """Mean tokens of one thought."""
        return self.tokens / self.thoughts if self.thoughts else 0.0

    def call_seconds(self, batch: float, thought_tokens: float | None = None) -> float:
        """A call writing ``batch`` thoughts (of ``thought_tokens`` each; default: the mean seen)."""
        if batch <= 0 or not self.known:
            return 0.0
        length = self.thought_tokens if thought_tokens is None else thought_tokens
        if self.a is None:  # constant throughput
            return batch * length * self.seconds / self.tokens
        return length * (self.a + self.b * batch)


def _fit_step_time(calls: list[Call]) -> tuple[float | None, float]:
    """(a, b) of decode-step seconds = a + b * batch, weighted by tokens; (None, 0) when not
    identifiable (one batch size) or not a cost (a or b negative): constant throughput then."""
    if len({c.batch for c in calls}) < 2:
        return None, 0.0
    w = [float(c.tokens) for c in calls]
    x = [float(c.batch) for c in calls]
    y = [c.seconds * c.batch / c.tokens for c in calls]  # seconds per decode step (tokens / batch steps)
    sw = sum(w)
    mx = sum(wi * xi for wi, xi in zip(w, x)) / sw
    my = sum(wi * yi for wi, yi in zip(w, y)) / sw
    sxx = sum(wi * (xi - mx) ** 2 for wi, xi in zip(w, x))
    sxy = sum(wi * (xi - mx) * (yi - my) for wi, xi, yi in zip(w, x, y))
    b = sxy / sxx
    a = my - b * mx
    if a < 0 or b < 0:
        return None, 0.0
    return a, b


@dataclass(frozen=True)
class StepPrediction:
    ar_seconds: float
    specsearch_seconds: float
    acceptance: float

    @property
    def ratio(self) -> float:
        """Predicted speed-up of specsearch over ar for the step (> 1: specsearch is faster)."""
        return self.ar_seconds / self.specsearch_seconds if self.specsearch_seconds > 0 else math.inf


class CostModel:
    """Costs fitted on a search's step timings (see the module docstring)."""

    def __init__(self, timings: Sequence[StepTiming], decay: float = 1.0) -> None:
        self.timings = list(timings)
        self.small = DecodeCost(t.calls["small"] for t in self.timings if "small" in t.calls)
        self.large = DecodeCost(t.calls["large"] for t in self.timings if "large" in t.calls)
        scored = sum(t.scored for t in self.timings)
        self.score_per_thought = sum(t.score_seconds for t in self.timings) / scored if scored else 0.0
        self.overhead = (sum(t.overhead_seconds for t in self.timings) / len(self.timings)) if self.timings else 0.0
        accepted = rejected = 0.0
        for t in self.timings:  # older judgements weigh decay less per later step that judged drafts
            if t.accepted + t.rejected:
                accepted, rejected = accepted * decay + t.accepted, rejected * decay + t.rejected
        self.acceptance = Acceptance(accepted, rejected)

    @property
    def ready(self) -> bool:
        """Whether both models' costs and some judged drafts are known (a step can be predicted)."""
        return self.small.known and self.large.known and self.acceptance.judged > 0

    def ar_seconds(self, thoughts: int) -> float:
        return self.large.call_seconds(thoughts) + self.score_per_thought * thoughts + self.overhead

    def specsearch_seconds(self, thoughts: int, acceptance: float | None = None) -> float:
        p = self.acceptance.mean if acceptance is None else acceptance
        return (self.small.call_seconds(thoughts) + self.score_per_thought * thoughts
                + self.expected_rewrite_seconds(thoughts, p)
                + self.score_per_thought * (1 - p) * thoughts + self.overhead)

    def expected_rewrite_seconds(self, thoughts: int, acceptance: float) -> float:
        """E[large call over K ~ Binomial(thoughts, 1 - acceptance) rejected drafts]: the call
        time is linear in K, plus the fixed part a*length whenever K > 0."""
        rejected = (1 - acceptance) * thoughts
        if self.large.a is None:
            return self.large.call_seconds(rejected)
        some = 1 - acceptance ** thoughts
        return self.large.thought_tokens * (self.large.a * some + self.large.b * rejected)

    def predict_step(self, thoughts: int) -> StepPrediction:
        """The next step of ``thoughts`` thoughts under ar and under specsearch."""
        return StepPrediction(self.ar_seconds(thoughts), self.specsearch_seconds(thoughts), self.acceptance.mean)

    def ceiling_step_seconds(self, thoughts: int) -> float:
        """A step with every draft accepted and scoring free."""
        return self.small.call_seconds(thoughts) + self.overhead


@dataclass(frozen=True)
class SearchCosts:
    predicted_ar_seconds: float | None  # the search's steps at ar's predicted cost, plus its time outside steps
    ceiling_seconds: float | None  # every step at draft cost, scoring free (None: no draft measured)


def search_costs(nodes: Sequence[ThoughtNode], steps: Sequence[StepRecord], wall_seconds: float) -> SearchCosts:
    """Predicted ar time and ceiling time of a search that took ``wall_seconds``."""
    timings = step_timings(nodes, steps)
    model = CostModel(timings)
    if not model.large.known or not timings:
        return SearchCosts(None, None)
    outside = max(0.0, wall_seconds - sum(t.seconds for t in timings))
    predicted_ar = outside + sum(model.ar_seconds(t.thoughts) for t in timings)
    ceiling = None
    if model.small.known:
        ceiling = outside + sum(model.ceiling_step_seconds(t.thoughts) for t in timings)
    return SearchCosts(predicted_ar, ceiling)

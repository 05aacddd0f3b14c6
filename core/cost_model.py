"""A thought-level cost model, measured from the search's own timings.

Each step records its generate calls (StepRecord.calls: model, batch, tokens,
prefill tokens, seconds), its phase times (score, select, ...) and its
accepted/rejected drafts; a record older than ``calls`` is read from its nodes
(each holds its tokens and its share of its batch's wall time).
:func:`step_timings` reads those back per step; :class:`CostModel` fits on them

* per model (small, large), least squares over its calls: seconds per prompt
  token read (prefill), and the time of one decode step at batch size n,
  ``a + b*n`` (with one batch size seen, or a fit with a negative term, a
  constant seconds per generated token), and the mean tokens of a thought;
* PRM scoring time: per draft scored (a PRM on the small model reads a draft from
  its cache) and per token of a large-model thought scored (read anew, so its
  cost grows with the thought's length), least squares over the steps after a
  search's first (whose scoring also reads the question);
* the fixed per-step overhead (the select phase);
* the drafts' acceptance rate p as a Beta(1, 1) posterior over the judged drafts
  (older judgements weigh ``decay`` less per later step that judged drafts),
  with a Wilson 95 % interval;

and predicts one step of N thoughts under ar (the large model writes them all,
reading no prompt: it holds the path it wrote) and under specsearch (the small
model drafts all, the PRM scores them, the large model rewrites the rejected
K ~ Binomial(N, 1-p), reading what the drafts added, and they are scored too):

    T_ar(N) = gen_large(N) + N L score_token + overhead
    T_ss(N) = gen_small(N) + N score_draft + E[gen_large(K)] + (1-p) N L score_token + overhead

(L: the tokens of a thought)

:func:`search_costs` turns a whole search into ``predicted_ar_seconds`` (steps
with drafts at the predicted ar cost, steps the large model wrote whole as
measured, plus the time outside steps) and ``ceiling_seconds`` (every step at
draft cost, scoring free): the predicted speed-up is predicted_ar_seconds /
wall, the ceiling predicted_ar_seconds / ceiling_seconds.  No engine: numbers in,
numbers out.

Limits: the large model's rewrites (speculative decoding, which on a CPU with
sampling decodes plainly) and plain ar decoding share one "large" cost; an ar
search is assumed to take the same steps, with thoughts as long as the ones
this search kept (whoever wrote them): ``bench``'s speed-up per kept token is the
measured figure to hold the prediction against, its speed-up the one users get
(a search that drafts can end in fewer or more steps than ar's).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .tree import StepRecord, ThoughtNode

Z95 = 1.959963984540054  # two-sided 95 % normal quantile (Wilson interval)


@dataclass(frozen=True)
class Call:
    """One batched generate call: ``batch`` thoughts, ``tokens`` in all, ``seconds`` of wall time,
    after reading ``prefill`` prompt tokens its KV cache did not hold."""

    batch: int
    tokens: int
    seconds: float
    prefill: int = 0

    def __add__(self, other: "Call") -> "Call":
        return Call(self.batch + other.batch, self.tokens + other.tokens, self.seconds + other.seconds,
                    self.prefill + other.prefill)


@dataclass
class StepTiming:
    """What one search step cost, per model and phase."""

    step: int
    generator: str = ""  # the generator that wrote it (StepRecord.generator)
    calls: dict[str, Call] = field(default_factory=dict)  # model (small, large) -> its call in this step
    thoughts: int = 0  # child slots of the step (drafts, or thoughts written whole)
    scored: dict[str, int] = field(default_factory=dict)  # thoughts the PRM scored, by writer (small, large)
    score_seconds: float = 0.0
    overhead_seconds: float = 0.0  # select
    accepted: int = 0
    rejected: int = 0
    scored_tokens: dict[str, int] = field(default_factory=dict)  # the scored thoughts' tokens, by writer
    trial: bool = False  # auto's trial: drafts judged, not used; the large model wrote the step's thoughts
    kept_tokens: int = 0  # tokens of the thoughts the step kept (``thoughts`` of them), whoever wrote them

    @property
    def thought_tokens(self) -> float:
        """Mean tokens of the thoughts the step kept, whoever wrote them: a rejected draft, or a
        trial's judged draft, is not one of the step's thoughts, and its length is not the length
        an ar step would write."""
        return self.kept_tokens / self.thoughts if self.thoughts else 0.0

    @property
    def seconds(self) -> float:
        """The step's measured time: its calls, scoring and overhead."""
        return sum(c.seconds for c in self.calls.values()) + self.score_seconds + self.overhead_seconds


def step_timings(nodes: Sequence[ThoughtNode], steps: Sequence[StepRecord]) -> list[StepTiming]:
    """Per-step timings of a search tree (live or saved), in step order: the calls the step
    recorded, else (a record older than StepRecord.calls) its nodes' tokens and seconds.  A
    step's nodes are those it made (StepRecord.first_node), else (an older record) those at its
    depth."""
    by_depth: dict[int, list[ThoughtNode]] = {}
    for node in nodes:
        by_depth.setdefault(node.depth, []).append(node)
    out = []
    for i, record in enumerate(steps):
        step_nodes = _nodes_of(record, steps[i + 1:], nodes) if record.first_node is not None \
            else by_depth.get(record.step, [])
        timing = StepTiming(record.step, record.generator, trial=record.trial)
        for call in record.calls:
            one = Call(int(call["batch"]), int(call["tokens"]), float(call["seconds"]), int(call.get("prefill", 0)))
            model = call["model"]
            timing.calls[model] = timing.calls[model] + one if model in timing.calls else one
        for model in ("small", "large"):
            written = [n for n in step_nodes if n.source == model]
            if written and not record.calls:
                timing.calls[model] = Call(len(written), sum(n.n_tokens for n in written),
                                           sum(n.seconds for n in written))
        # The thoughts the step kept, one per child slot: a rejected draft's replacement fills its
        # slot; a trial's drafts fill none (the record says which step was a trial in trees saved
        # before trial drafts were marked on their nodes).
        kept = [n for n in step_nodes if n.kept and not (record.trial and n.source == "small")]
        timing.thoughts, timing.kept_tokens = len(kept), sum(n.n_tokens for n in kept)
        for model in ("small", "large"):
            scored = [n for n in step_nodes if n.score is not None and n.source == model]
            timing.scored[model] = len(scored)
            timing.scored_tokens[model] = sum(n.n_tokens for n in scored)
        timing.score_seconds = record.phase_seconds.get("score", 0.0)
        timing.overhead_seconds = record.phase_seconds.get("select", 0.0)
        timing.accepted, timing.rejected = len(record.accepted), len(record.rejected)
        out.append(timing)
    return out


def _nodes_of(record: StepRecord, later: Sequence[StepRecord], nodes: Sequence[ThoughtNode]) -> list[ThoughtNode]:
    """The nodes ``record``'s step made: ids from its first_node up to the next step's."""
    end = next((r.first_node for r in later if r.first_node is not None), None)
    return [n for n in nodes if n.id >= record.first_node and (end is None or n.id < end)]


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
    """Time of a model's batched generate call: ``prefill_seconds`` per prompt token read, plus
    ``length`` decode steps of ``a + b*batch`` seconds (or, when that is not identifiable,
    ``per_token`` seconds per generated token)."""

    def __init__(self, calls: Iterable[Call]) -> None:
        calls = [c for c in calls if c.tokens > 0 and c.seconds > 0]
        self.tokens = sum(c.tokens for c in calls)
        self.thoughts = sum(c.batch for c in calls)
        self.prefill_per_thought = sum(c.prefill for c in calls) / self.thoughts if self.thoughts else 0.0
        self.a: float | None = None
        self.b = 0.0
        self.prefill_seconds = 0.0
        self.per_token = sum(c.seconds for c in calls) / self.tokens if self.tokens else 0.0
        self._fit(calls)

    def _fit(self, calls: list[Call]) -> None:
        """Least squares of the call seconds on [prefill,] length, length*batch (two batch sizes
        or more) or tokens (one); prefill is a term only with two calls more than terms.  A
        negative coefficient is not a cost: prefill is dropped, then the per-token rate is kept."""
        stepwise = len({c.batch for c in calls}) >= 2
        decode = [[c.tokens / c.batch, c.tokens] for c in calls] if stepwise else [[c.tokens] for c in calls]
        seconds = [c.seconds for c in calls]
        with_prefill = any(c.prefill for c in calls) and len(calls) >= len(decode[0]) + 3
        for use_prefill in ([True, False] if with_prefill else [False]):
            rows = [([c.prefill] if use_prefill else []) + d for c, d in zip(calls, decode)]
            coef = _least_squares(rows, seconds)
            if coef is None or min(coef) < 0:
                continue
            self.prefill_seconds = coef[0] if use_prefill else 0.0
            decode_coef = coef[1:] if use_prefill else coef
            if stepwise:
                self.a, self.b = decode_coef
            else:
                self.per_token = decode_coef[0]
            return

    @property
    def known(self) -> bool:
        return self.tokens > 0

    @property
    def thought_tokens(self) -> float:
        """Mean tokens of one thought."""
        return self.tokens / self.thoughts if self.thoughts else 0.0

    def call_seconds(self, batch: float, thought_tokens: float | None = None, prefill: float = 0.0) -> float:
        """A call writing ``batch`` thoughts (of ``thought_tokens`` each; default: the mean seen)
        after reading ``prefill`` prompt tokens."""
        if batch <= 0 or not self.known:
            return 0.0
        length = self.thought_tokens if thought_tokens is None else thought_tokens
        decode = batch * length * self.per_token if self.a is None else length * (self.a + self.b * batch)
        return decode + self.prefill_seconds * prefill


def _least_squares(rows: list[list[float]], y: list[float]) -> list[float] | None:
    """The least-squares coefficients of y on rows (None: too few rows, or not identifiable)."""
    if not rows or len(rows) < len(rows[0]):
        return None
    x = np.asarray(rows, dtype=float)
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return None
    return [float(v) for v in np.linalg.lstsq(x, np.asarray(y, dtype=float), rcond=None)[0]]


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
        # Prompt tokens a rewrite reads per rejected draft (the drafts it continues from were the small model's).
        rewrites = [t.calls["large"] for t in self.timings if "large" in t.calls and "small" in t.calls
                    and not t.trial]
        self.rewrite_prefill = sum(c.prefill for c in rewrites) / max(1, sum(c.batch for c in rewrites))
        self.score_per_draft, self.score_per_large_token = _score_costs(self.timings)
        # A step's thoughts are taken as long as the thoughts this search kept, whoever wrote them.
        kept = sum(t.thoughts for t in self.timings)
        self.thought_tokens = sum(t.kept_tokens for t in self.timings) / kept if kept else 0.0
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

    def ar_seconds(self, thoughts: int, length: float | None = None) -> float:
        """A step of ar (thoughts of ``length`` tokens; default: the search's mean): no prefill
        (the large model wrote the path itself and holds it)."""
        length = self.thought_tokens if length is None else length
        return (self.large.call_seconds(thoughts, length) + self.score_per_large_token * thoughts * length
                + self.overhead)

    def draft_seconds(self, thoughts: int, length: float | None = None) -> float:
        """The small model's drafting call, with the prefill per draft seen so far."""
        length = self.thought_tokens if length is None else length
        return self.small.call_seconds(thoughts, length, prefill=self.small.prefill_per_thought * thoughts)

    def specsearch_seconds(self, thoughts: int, acceptance: float | None = None, length: float | None = None) -> float:
        p = self.acceptance.mean if acceptance is None else acceptance
        length = self.thought_tokens if length is None else length
        return (self.draft_seconds(thoughts, length) + self.score_per_draft * thoughts
                + self.expected_rewrite_seconds(thoughts, p, length)
                + self.score_per_large_token * (1 - p) * thoughts * length + self.overhead)

    def expected_rewrite_seconds(self, thoughts: int, acceptance: float, length: float | None = None) -> float:
        """E[large call over K ~ Binomial(thoughts, 1 - acceptance) rejected drafts]: the call
        time is linear in K (decode and prefill), plus the fixed part a*length whenever K > 0."""
        length = self.thought_tokens if length is None else length
        rejected = (1 - acceptance) * thoughts
        prefill = self.large.prefill_seconds * self.rewrite_prefill * rejected
        if self.large.a is None:
            return self.large.call_seconds(rejected, length) + prefill
        some = 1 - acceptance ** thoughts
        return length * (self.large.a * some + self.large.b * rejected) + prefill

    def predict_step(self, thoughts: int) -> StepPrediction:
        """The next step of ``thoughts`` thoughts under ar and under specsearch."""
        return StepPrediction(self.ar_seconds(thoughts), self.specsearch_seconds(thoughts), self.acceptance.mean)

    def ceiling_step_seconds(self, thoughts: int, length: float | None = None) -> float:
        """A step with every draft accepted and scoring free."""
        return self.draft_seconds(thoughts, length) + self.overhead


def _score_costs(timings: Sequence[StepTiming]) -> tuple[float, float]:
    """Seconds to score one draft, and one token of a large-model thought: least squares of
    each step's scoring time on its drafts scored and its large-model tokens scored (a reward
    model on the small model reads its own drafts from its cache, the large model's thoughts
    anew, token by token).  A search's first step is left out when later steps were scored: the
    reward model reads the question there too, once a search.  When the fit is not identifiable
    or gives a negative cost, a step's large-model tokens carry its scoring time (drafts beside
    them are nearly free: 6.3 ms a large-model token, 5 ms a draft of ~60 tokens over 639 steps
    of the real pair), and a draft costs what steps that scored drafts alone took; with no
    large-model thought scored, every token is priced alike."""
    later = [t for t in timings if t.step > 1]
    timings = later or list(timings)
    rows = [[t.scored.get("small", 0), t.scored_tokens.get("large", 0)] for t in timings]
    coef = _least_squares(rows, [t.score_seconds for t in timings])
    if coef is not None and min(coef) >= 0:
        return coef[0], coef[1]
    with_large = [t for t in timings if t.scored_tokens.get("large", 0)]
    if with_large:
        drafts_only = [t for t in timings if not t.scored_tokens.get("large", 0)]
        drafts = sum(t.scored.get("small", 0) for t in drafts_only)
        return (sum(t.score_seconds for t in drafts_only) / drafts if drafts else 0.0,
                sum(t.score_seconds for t in with_large) / sum(t.scored_tokens["large"] for t in with_large))
    tokens = sum(sum(t.scored_tokens.values()) for t in timings)
    per_token = sum(t.score_seconds for t in timings) / tokens if tokens else 0.0
    drafts = sum(t.scored.get("small", 0) for t in timings)
    per_draft = per_token * sum(t.scored_tokens.get("small", 0) for t in timings) / drafts if drafts else 0.0
    return per_draft, per_token


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
    # A step the large model wrote whole (specsearch's first, auto's ar steps) is an ar step: as measured.
    # Each drafted step's ar counterpart writes as many thoughts, as long as this step's.
    # A trial's ar counterpart is its own large-model call and that call's scoring (its drafting wasted).
    predicted_ar = outside + sum(model.ar_seconds(t.thoughts, t.thought_tokens) if "small" in t.calls else t.seconds
                                 for t in timings)
    ceiling = None
    if model.small.known:
        ceiling = outside + sum(model.ceiling_step_seconds(t.thoughts, t.thought_tokens) for t in timings)
    return SearchCosts(predicted_ar, ceiling)

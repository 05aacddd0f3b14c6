"""The ``auto`` method: specsearch while the cost model predicts it beats ar, ar when not.

Before each step after the first, :class:`AutoMethod` fits core.cost_model's
CostModel on the search's finished steps (acceptance weighted towards recent
steps) and asks for the predicted speed-up of specsearch over ar for a step of
this size.  :class:`SwitchDecision` adds hysteresis: the mode changes only when
the prediction is on the other side of 1 + ``margin`` for ``patience``
predictions in a row, each made on newly judged drafts (a prediction on the same
evidence again is no second opinion).  The rule leans to ar, which is never
slower than itself and writes the large model's own thoughts: specsearch is left
when its predicted speed-up at the estimated acceptance is below 1 + margin (an
accepted draft risks the answer, so a gain of a few percent is not worth it), and
taken back only when the speed-up predicted at the low end of the acceptance's
interval (``confidence_z``) passes 1 + margin too; the gap between the estimate
and that low end is the hysteresis that keeps noise from flapping it.  While in
ar mode, every ``probe_every``-th step is a trial (a probe): the small model drafts
and the judge scores as in specsearch, so the acceptance estimate stays current,
but the step's thoughts are still the large model's -- an accepted draft risks
the answer, and a probe is made where drafting was not shown to pay.

In ar mode the large model writes the step as specsearch writes its rewrites
(core.generators.large_writer_for): with token-level drafting when the speculative
decoder's adaptive-k policy says it pays (method sps), alone otherwise (method ar);
its scores keep updating β as specsearch's large-model thoughts would.  Each
switch is a MethodSwitched event with its reason, also kept in
``SearchStats.switches``.

What one search learns is kept for the next on the same Solver with the same
settings (:class:`AutoMemory`, in ``Models.between_searches``): its mode, probe
interval and recent step timings.  Without it every search would pay again, in
specsearch steps whose drafts are thrown away, to learn what the last one knew;
a search that starts in ar for that reason says so with a MethodSwitched event
at its first step.  Probes back off (the interval doubles after each, up to
``max_probe_every``) while they keep confirming ar.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .cost_model import CostModel, StepTiming, step_timings
from .events import DraftsTried, MethodSwitched
from .generators import AutoRegressive, Models, SpecSearch, SpeculativeSampling, ThoughtGenerator, large_writer_for
from .search_state import Beam, Candidate, SearchState
from .threshold import Threshold

if TYPE_CHECKING:  # core.config imports this module (through core.methods)
    from .config import SearchConfig

SPECSEARCH, AR = "specsearch", "ar"
ACCEPTANCE_DECAY = 0.7
"""Weight of a step's judged drafts per later step, in auto's acceptance estimate."""
KEEP_STEPS = 48
"""Steps of earlier searches auto's cost model keeps fitting on."""


@dataclass(frozen=True)
class SwitchPolicy:
    margin: float = 0.2
    """specsearch must be predicted this much faster than ar to be kept (below 1 + margin: switch
    to ar) or taken back (its cautious prediction above 1 + margin).  Well above 0 because every
    accepted draft risks the answer while the step judge is weak: a gain of a few percent is not
    worth it.  0.2 makes the decisions that kept ar's accuracy on 30 held-out GSM8K problems at a
    bar of 0.05, when the cost model priced ar's scoring at half and its predictions near the bar
    came out 11-22 % lower."""
    patience: int = 2
    """... for this many predictions in a row, each made on newly judged drafts."""
    confidence_z: float = 1.28
    """In ar mode, the speed-up that counts is the one predicted at the low end of the
    acceptance's Wilson interval at this z (1.28: one-sided 90 %): back to specsearch only
    when drafting pays even if the drafts were that bad (0: at the estimate)."""
    probe_every: int = 4
    """In ar mode, make the step after probe_every ar steps a trial (0: never): drafts judged, not used."""
    probe_backoff: int = 2
    """After each probe the interval is multiplied by this (1: a fixed interval) ..."""
    max_probe_every: int = 32
    """... up to this; a switch back to specsearch resets it to probe_every."""

    @property
    def bar(self) -> float:
        """The predicted speed-up specsearch must pass to be kept or taken back: 1 + margin."""
        return 1 + self.margin


class SwitchDecision:
    """The mode (specsearch or ar) for the next step, from predicted speed-ups, with hysteresis."""

    def __init__(self, policy: SwitchPolicy = SwitchPolicy(), start: str = SPECSEARCH) -> None:
        self.policy = policy
        self.mode = start
        self.streak = 0  # predictions in a row against the current mode
        self.ar_steps = 0  # ar steps since the last probe
        self.probe_every = policy.probe_every  # the current probe interval

    def observe(self, ratio: float | None, cautious: float | None = None, fresh: bool = True) -> bool:
        """Fold in the predicted speed-up of specsearch over ar (None: not predictable yet) and the
        speed-up predicted at the low end of the acceptance interval (``cautious``; default:
        ``ratio``); ``fresh``: whether drafts were judged since the last prediction (a prediction
        on no new evidence neither grows nor breaks the streak).  True when the mode changed."""
        if ratio is None:
            self.streak = 0
            return False
        if not fresh:
            return False
        bar = self.policy.bar
        if self.mode == SPECSEARCH:
            against = ratio < bar
        else:
            against = (ratio if cautious is None else min(ratio, cautious)) > bar
        self.streak = self.streak + 1 if against else 0
        if self.streak < self.policy.patience:
            return False
        self.mode = AR if self.mode == SPECSEARCH else SPECSEARCH
        self.streak = self.ar_steps = 0
        if self.mode == SPECSEARCH:
            self.probe_every = self.policy.probe_every
        return True

    def next_is_probe(self) -> bool:
        """Whether the next step (in ar mode) is a trial of drafting; counts the step."""
        if self.mode != AR:
            return False
        self.ar_steps += 1
        every = self.probe_every
        if every > 0 and self.ar_steps > every:
            self.ar_steps = 0
            self.probe_every = min(every * self.policy.probe_backoff, max(every, self.policy.max_probe_every))
            return True
        return False


@dataclass
class AutoMemory:
    """What auto carries from one search to the next with the same models and settings."""

    decision: SwitchDecision
    past: list[StepTiming] = field(default_factory=list)  # earlier searches' steps, oldest first
    current: list[StepTiming] = field(default_factory=list)  # this search's finished steps
    seen_steps: int = 0  # steps of ``current`` a prediction has taken in
    pending: bool = False  # drafts judged in an earlier search that no prediction has taken in

    def start_search(self) -> None:
        # The decision's streak carries over: it counts judged evidence, which stays valid.
        self.pending = self.unseen_judged()
        self.past = (self.past + self.current)[-KEEP_STEPS:]
        self.current = []
        self.seen_steps = 0

    def unseen_judged(self) -> bool:
        """Whether drafts were judged since the last prediction (a probe at a search's last
        step counts at the next search's first prediction)."""
        return self.pending or any(t.accepted + t.rejected for t in self.current[self.seen_steps:])

    def take_in(self) -> bool:
        """Mark every finished step as seen by a prediction; True when that brings judged drafts."""
        fresh = self.unseen_judged()
        self.seen_steps, self.pending = len(self.current), False
        return fresh

    def timings(self) -> list[StepTiming]:
        return self.past + self.current


_NOT_IN_MEMORY_KEY = ("method", "seed", "max_depth", "token_budget")


def memory_key(config: SearchConfig) -> str:
    """Searches whose settings differ only in what does not change a step's cost or its drafts'
    acceptance (seed, depth, budget) share auto's memory."""
    settings = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_MEMORY_KEY}
    return "auto:" + json.dumps(settings, sort_keys=True, default=str)


Predictor = Callable[[Sequence[StepTiming], int], "tuple[float | None, CostModel]"]


def predict_ratio(timings: Sequence[StepTiming], thoughts: int) -> tuple[float | None, CostModel]:
    """Predicted speed-up of specsearch over ar for a step of ``thoughts`` thoughts, from finished
    steps (None until a draft has been judged), and the model it came from."""
    model = CostModel(timings, decay=ACCEPTANCE_DECAY)
    return (model.predict_step(thoughts).ratio if model.ready else None), model


def cautious_ratio(model: CostModel, thoughts: int, z: float) -> tuple[float, float] | None:
    """The low end of ``model``'s acceptance's Wilson interval at ``z`` (0: the estimate) and
    the speed-up it predicts for specsearch there (None when it cannot predict)."""
    if not model.ready:
        return None
    low = model.acceptance.wilson(z)[0] if z > 0 else model.acceptance.mean
    ss = model.specsearch_seconds(thoughts, acceptance=low)
    return (low, model.ar_seconds(thoughts) / ss) if ss > 0 else None


class AutoMethod:
    """A ThoughtGenerator that picks specsearch or ar (sps) per step; see the module docstring."""

    name = "auto"

    def __init__(self, models: Models, threshold: Threshold, decision: SwitchDecision | None = None,
                 predict: Predictor = predict_ratio) -> None:
        """``decision``: this search's own, remembering nothing (default: the one the Solver keeps
        for these settings, see AutoMemory)."""
        self.models = models
        self.threshold = threshold
        self.own_decision = decision
        self.memory: AutoMemory | None = None  # found at the first step, from the search's settings
        self.predict = predict
        self.specsearch = SpecSearch(models, threshold)
        self.plain: dict[str, ThoughtGenerator] = {"ar": AutoRegressive(models), "sps": SpeculativeSampling(models)}

    def room(self, beams: list[Beam], children: int) -> int:
        # Any step may be a specsearch step: its room (small model and decoder) bounds every mode's.
        return self.specsearch.room(beams, children)

    @property
    def decision(self) -> SwitchDecision:
        if self.memory is None:
            raise RuntimeError("auto has not started a search")
        return self.memory.decision

    def _start(self, state: SearchState, depth: int, thoughts: int) -> None:
        if self.own_decision is not None:
            self.memory = AutoMemory(self.own_decision)
        else:
            self.memory = self.models.between_searches.setdefault(memory_key(state.config),
                                                                  AutoMemory(SwitchDecision()))
        self.memory.start_search()
        if self.memory.decision.mode == AR and self.memory.past:  # say why this search starts in ar
            ratio, model = self.predict(self.memory.past, thoughts)
            worst = cautious_ratio(model, thoughts, self.memory.decision.policy.confidence_z)
            self._announce(state, depth, SPECSEARCH, ratio, model, "in earlier searches", worst)

    def expand(self, state: SearchState, beams: list[Beam], depth: int) -> list[Candidate]:
        thoughts = len(beams) * state.config.children
        if self.memory is None:
            self._start(state, depth, thoughts)
        elif len(state.steps) > 1:
            self._decide(state, depth, thoughts)
        if self.decision.mode == SPECSEARCH:
            return self.specsearch.expand(state, beams, depth)
        # A first step is the large model's in specsearch too (it sets β): no use as a probe.
        if len(state.steps) > 1 and self.decision.next_is_probe():
            # A trial: the drafts are judged to measure acceptance but kept out of the beam, so
            # measuring costs time (the drafting and its scoring) and never the answer.
            state.emit(DraftsTried(depth))
            self.specsearch.judge_drafts(state, beams, depth)
            state.step.trial = True
        drafting = self.models.speculative_decoder is not None and \
            large_writer_for(self.models, state, thoughts) is self.models.speculative_decoder
        writer = self.plain["sps" if drafting else "ar"]
        cands = writer.expand(state, beams, depth)
        # Large-model thoughts keep β current for the next specsearch step.
        self.threshold.observe_large([c.node.score for c in cands if c.node.score is not None])
        return cands

    def finish(self, state: SearchState) -> None:
        """The search ended: keep every step's timing, the last one's too (no decision came after
        it, so without this a try at a search's last step would be lost to the next search)."""
        if self.memory is not None:
            self.memory.current = step_timings(state.nodes, state.steps)

    def _decide(self, state: SearchState, depth: int, thoughts: int) -> None:
        memory = self.memory
        assert memory is not None
        before = memory.decision.mode
        memory.current = step_timings(state.nodes, state.steps[:-1])
        ratio, model = self.predict(memory.timings(), thoughts)
        fresh = memory.take_in()
        worst = cautious_ratio(model, thoughts, memory.decision.policy.confidence_z)
        if memory.decision.observe(ratio, worst[1] if worst else None, fresh):
            self._announce(state, depth, before, ratio, model, worst=worst)

    def _announce(self, state: SearchState, depth: int, before: str, ratio: float | None, model: CostModel,
                  when: str = "", worst: tuple[float, float] | None = None) -> None:
        """``worst``: cautious_ratio's (acceptance, speed-up), for the reason."""
        mode = self.decision.mode
        low, high = model.acceptance.wilson()
        reason = switch_reason(mode, ratio, model.acceptance.mean, when, worst, self.decision.policy.bar)
        event = MethodSwitched(depth, before, mode, reason, ratio, model.acceptance.mean, low, high)
        state.stats.switches.append(event.record())
        state.emit(event)


def switch_reason(mode: str, ratio: float | None, acceptance: float, when: str = "",
                  worst: tuple[float, float] | None = None, bar: float = SwitchPolicy().bar) -> str:
    """One line: why auto now uses ``mode`` (``when``: where the acceptance was measured, if not
    in this search; ``worst``: the low end of the acceptance interval and the speed-up predicted
    there, which decided a switch back to specsearch; ``bar``: the speed-up specsearch must reach)."""
    speed = f"specsearch predicted at ×{ratio:.2f} of ar's speed" if ratio is not None else "no prediction"
    measured = f"acceptance {acceptance:.0%}" + (f" {when}" if when else "")
    if mode == AR:
        if ratio is not None and ratio >= bar and worst is not None:  # ar for want of certainty
            if worst[1] > bar:  # one try said so; patience wants another
                return (f"{measured}: drafting looks to pay again ({speed}, ×{worst[1]:.2f} even at acceptance "
                        f"{worst[0]:.0%}); ar until a next try confirms it")
            return f"{measured}: drafting not shown to pay ({speed}, ×{worst[1]:.2f} at acceptance {worst[0]:.0%})"
        if ratio is not None and ratio >= 1:  # a gain, but too small for the drafts' risk
            return f"{measured}: drafting saves too little to risk the answer on drafts ({speed}, below ×{bar:.2f})"
        return f"{measured}: drafting costs more than it saves ({speed})"
    if worst is not None:
        speed += f", ×{worst[1]:.2f} even at acceptance {worst[0]:.0%}"
    return f"{measured}: drafting saves time again ({speed})"

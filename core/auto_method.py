"""The ``auto`` method: specsearch while the cost model predicts it beats ar, ar when not.

Before each step after the first, :class:`AutoMethod` fits core.cost_model's
CostModel on the search's finished steps (acceptance weighted towards recent
steps) and asks for the predicted speed-up of specsearch over ar for a step of
this size.  :class:`SwitchDecision` adds hysteresis: the mode changes only when
the prediction is past 1 ± ``margin`` for ``patience`` steps in a row, so noise
around 1 does not flap it.  While in ar mode, every ``probe_every``-th step is
a specsearch step again (a probe), so the acceptance estimate stays current.

In ar mode the large model writes the step, with token-level drafting when the
speculative decoder's own adaptive-k policy says drafting pays (method sps),
plainly otherwise (method ar); its scores keep updating β as specsearch's
large-model thoughts would.  Each switch is a MethodSwitched event with its
reason, also kept in ``SearchStats.switches``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .cost_model import CostModel, step_timings
from .events import MethodSwitched
from .generators import AutoRegressive, Models, SpecSearch, SpeculativeSampling, ThoughtGenerator, search_sampling
from .search_state import Beam, Candidate, SearchState
from .speculative import SpeculativeDecoder
from .threshold import Threshold

SPECSEARCH, AR = "specsearch", "ar"
ACCEPTANCE_DECAY = 0.7
"""Weight of a step's judged drafts per later step, in auto's acceptance estimate."""


@dataclass(frozen=True)
class SwitchPolicy:
    margin: float = 0.05
    """Switch only when the predicted speed-up is below 1 - margin (or, in ar mode, above 1 + margin)."""
    patience: int = 2
    """... for this many steps in a row."""
    probe_every: int = 4
    """In ar mode, make every probe_every-th step a specsearch step (0: never)."""


class SwitchDecision:
    """The mode (specsearch or ar) for the next step, from predicted speed-ups, with hysteresis."""

    def __init__(self, policy: SwitchPolicy = SwitchPolicy(), start: str = SPECSEARCH) -> None:
        self.policy = policy
        self.mode = start
        self.streak = 0  # predictions in a row against the current mode
        self.ar_steps = 0  # ar steps since the last probe

    def observe(self, ratio: float | None) -> bool:
        """Fold in the predicted speed-up of specsearch over ar (None: not predictable yet);
        True when the mode changed."""
        if ratio is None:
            self.streak = 0
            return False
        m = self.policy.margin
        against = ratio < 1 - m if self.mode == SPECSEARCH else ratio > 1 + m
        self.streak = self.streak + 1 if against else 0
        if self.streak < self.policy.patience:
            return False
        self.mode = AR if self.mode == SPECSEARCH else SPECSEARCH
        self.streak = self.ar_steps = 0
        return True

    def next_is_probe(self) -> bool:
        """Whether the next step (in ar mode) is a specsearch probe; counts the step."""
        if self.mode != AR:
            return False
        self.ar_steps += 1
        every = self.policy.probe_every
        if every > 0 and self.ar_steps > every:
            self.ar_steps = 0
            return True
        return False


def token_drafting_pays(decoder: SpeculativeDecoder | None, greedy: bool, batch: int) -> bool:
    """Whether the speculative decoder's adaptive-k policy would draft (sps) rather than decode plainly."""
    if decoder is None or not decoder.policy.adaptive:
        return False
    policy = decoder.policy
    if not greedy:
        return not policy.drafting_never_pays()
    if not (policy.draft_cost.known and policy.target_cost.known):
        return True  # not measured yet: the decoder measures both and falls back by itself
    return max(range(policy.k_max + 1), key=lambda k: policy.expected_rate(k, batch)) > 0


Predictor = Callable[[SearchState, int], "tuple[float | None, CostModel]"]


def predict_ratio(state: SearchState, thoughts: int) -> tuple[float | None, CostModel]:
    """Predicted speed-up of specsearch over ar for a step of ``thoughts`` thoughts, from the
    search's finished steps (None until a draft has been judged), and the model it came from."""
    model = CostModel(step_timings(state.nodes, state.steps[:-1]), decay=ACCEPTANCE_DECAY)
    return (model.predict_step(thoughts).ratio if model.ready else None), model


class AutoMethod:
    """A ThoughtGenerator that picks specsearch or ar (sps) per step; see the module docstring."""

    name = "auto"

    def __init__(self, models: Models, threshold: Threshold, decision: SwitchDecision | None = None,
                 predict: Predictor = predict_ratio) -> None:
        self.models = models
        self.threshold = threshold
        self.decision = decision or SwitchDecision()
        self.predict = predict
        self.specsearch = SpecSearch(models, threshold)
        self.plain: dict[str, ThoughtGenerator] = {"ar": AutoRegressive(models), "sps": SpeculativeSampling(models)}

    def room(self, beams: list[Beam], children: int) -> int:
        # Any step may be a specsearch step: its room (small model and decoder) bounds every mode's.
        return self.specsearch.room(beams, children)

    def expand(self, state: SearchState, beams: list[Beam], depth: int) -> list[Candidate]:
        thoughts = len(beams) * state.config.children
        if len(state.steps) > 1:
            self._decide(state, depth, thoughts)
        if self.decision.mode == SPECSEARCH or self.decision.next_is_probe():
            return self.specsearch.expand(state, beams, depth)
        greedy = search_sampling(state).greedy
        writer = self.plain["sps" if token_drafting_pays(self.models.speculative_decoder, greedy, thoughts) else "ar"]
        cands = writer.expand(state, beams, depth)
        # Large-model thoughts keep β current for the next specsearch step.
        self.threshold.observe_large([c.node.score for c in cands if c.node.score is not None])
        return cands

    def _decide(self, state: SearchState, depth: int, thoughts: int) -> None:
        before = self.decision.mode
        ratio, model = self.predict(state, thoughts)
        if not self.decision.observe(ratio):
            return
        low, high = model.acceptance.wilson()
        event = MethodSwitched(depth, before, self.decision.mode, switch_reason(self.decision.mode, ratio,
                               model.acceptance.mean), ratio, model.acceptance.mean, low, high)
        state.stats.switches.append(event.record())
        state.emit(event)


def switch_reason(mode: str, ratio: float | None, acceptance: float) -> str:
    """One line: why auto now uses ``mode``."""
    speed = f"specsearch predicted at ×{ratio:.2f} of ar's speed" if ratio is not None else "no prediction"
    if mode == AR:
        return f"acceptance {acceptance:.0%}: drafting costs more than it saves ({speed})"
    return f"acceptance {acceptance:.0%}: drafting saves time again ({speed})"

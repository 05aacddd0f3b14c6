"""Flat configuration of one search (search-and-learn style): the single source of the search options.

Each field's type, default and docstring are what the CLI's ``solve``/``bench``
flags and the app's settings show (:func:`search_options`), so a new option is
one field here.  Every field is read by the search, and a search's record
saves them all (``to_dict``): only options that really shaped the run belong here.
Each number field's range is in ``SEARCH_BOUNDS`` (checked when a config is made).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .methods import METHODS, method_names
from .options import Bounds, Option, check_bounds, describe_fields
from .sampling import SAMPLING_BOUNDS
from .strategies import STRATEGIES, strategy_names


@dataclass
class SearchConfig:
    method: str = "auto"
    """How each step's thoughts are written (one of the methods registered in core.methods).
    auto (the default): specsearch while it is predicted to beat ar, ar when not."""
    search: str = "beam"
    """How the tree of thoughts is searched (one of the strategies registered in core.strategies)."""
    beam_width: int = 2
    """Beams kept after each step (B)."""
    children: int = 4
    """Thoughts generated per beam per step (N)."""
    max_depth: int = 12
    """Most steps (thoughts) in a solution."""
    max_step_tokens: int = 192
    """Token budget of one thought."""
    mcts_iterations: int = 4
    """search = mcts: iterations (select by UCT, expand, back up) per step before it commits to a thought."""
    mcts_exploration: float = 1.0
    """search = mcts: the UCT exploration constant c (0 = follow the PRM values only)."""
    n_solutions: int = 4
    """search = best-of-n: independent solutions (each one thought per step), answered by weighted vote."""
    dvts_subtrees: int = 2
    """search = dvts: independent subtrees, each keeping its best child per step."""
    token_budget: int = 0
    """Start no new step once the models have generated this many tokens in all (0 = no limit):
    compares searches at an equal budget."""
    temperature: float = 0.7
    """Sampling temperature (0 = greedy)."""
    top_k: int = 40
    """Sample from the k most likely tokens (0 = all)."""
    top_p: float = 0.95
    """Sample from the smallest set of tokens whose probabilities sum to p (1 = all)."""
    min_p: float = 0.0
    """Drop tokens less likely than min_p times the most likely one (0 = none)."""
    seed: int = 0
    """Sampling seed: the same seed gives the same search."""
    delimiter: str = "\n\n"
    """Thought delimiter: a thought ends where the model writes it."""
    join_lead_ins: int = 2
    """Most times one thought is continued past a delimiter because what it wrote so far only
    leads in to the next paragraph (ends with ':', a lone heading, a display-math or code block
    left open), within max_step_tokens; 0 = every delimiter ends a thought."""
    aggregation: Literal["last", "min", "prod"] = "last"
    """How step scores combine into a path score for beam selection."""
    answer_selection: Literal["best", "weighted_vote"] = "best"
    """best: the finished leaf with the highest path score; weighted_vote: the
    answer whose finished leaves have the largest summed path score (best-of-n always votes)."""
    threshold_mode: Literal["adaptive", "fixed"] = "adaptive"
    """adaptive: β from the large model's own scores (SpecSearch);
    fixed: the constant fixed_beta (Reward-Guided Speculative Decoding)."""
    theta: float = 0.9
    """θ: EMA weight of the previous threshold, β' = θ·β + (1-θ)·Θ(large-model scores)."""
    threshold_stat: Literal["mean", "max", "quantile"] = "mean"
    """Θ: the statistic of the large model's step scores that estimates its quality."""
    threshold_quantile: float = 0.5
    """q for threshold_stat = quantile."""
    fixed_beta: float = 0.5
    """The constant threshold β when threshold_mode = fixed (given without threshold_mode, it sets fixed)."""
    large_scores: Literal["read", "own"] = "read"
    """How a log-prob head scores the large model's thoughts: read = its backbone (the small
    model) reads them, as the paper's PRM does; own = from the log-probs the large model
    computed writing them, as drafts are scored from the drafter's (free, and the same kind of
    number as a draft's score). own needs a head without hidden-state features."""
    threshold_margin: float = 0.01
    """Added to β before drafts are compared with it: a quality guard that
    trades acceptance (speed) for fewer accepted mistakes when the judge is weak
    (0.01: at ar's accuracy on 50 GSM8K dev problems with the shipped head; 0 is the paper's β)."""
    system_prompt: str = (
        "Please reason step by step, separating steps with a blank line, "
        "and put your final answer within \\boxed{}."
    )
    """The system message before the question (empty: none)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {', '.join(method_names())}")
        if self.search not in STRATEGIES:
            raise ValueError(f"unknown search {self.search!r}; choose from {', '.join(strategy_names())}")
        for name, choices in _LITERAL_CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {getattr(self, name)!r}")
        check_bounds(self, SEARCH_BOUNDS)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchConfig":
        """Known keys only: a record may hold options this version no longer has (spec_tokens)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


_AT_LEAST_ONE = Bounds(1, kind=int)
SEARCH_BOUNDS = {
    "beam_width": _AT_LEAST_ONE,
    "children": _AT_LEAST_ONE,
    "max_depth": _AT_LEAST_ONE,
    "max_step_tokens": _AT_LEAST_ONE,
    "mcts_iterations": _AT_LEAST_ONE,
    "mcts_exploration": Bounds(0.0),
    "n_solutions": _AT_LEAST_ONE,
    "dvts_subtrees": _AT_LEAST_ONE,
    "token_budget": Bounds(0, kind=int),
    "join_lead_ins": Bounds(0, kind=int),
    **SAMPLING_BOUNDS,
    "seed": Bounds(kind=int),
    "theta": Bounds(0.0, 1.0),
    "threshold_quantile": Bounds(0.0, 1.0),
    # +inf rejects every draft and -inf accepts every one: both mean something for β
    "fixed_beta": Bounds(infinite=True),
    "threshold_margin": Bounds(),
}
"""The values each number field of SearchConfig takes."""

_LITERAL_CHOICES = {o.name: o.choices for o in describe_fields(SearchConfig) if o.choices is not None}

SHORT_NAMES = {"beam_width": "beam", "max_depth": "depth", "max_step_tokens": "step_tokens",
               "threshold_quantile": "quantile"}
"""Short names kept from before the options were derived from the fields: each is an
extra flag (--beam) and environment variable (SPECSEARCH_BEAM) besides the field's own."""


def search_options() -> tuple[Option, ...]:
    """Every SearchConfig field as an Option, in field order.  ``method``'s and ``search``'s
    choices are the methods and strategies registered now (with their descriptions), so one
    registered later is listed too."""
    methods = {m.name: m.description for m in METHODS.values()}
    strategies = {s.name: s.description for s in STRATEGIES.values()}
    return describe_fields(SearchConfig, {"method": methods, "search": strategies}, SHORT_NAMES)


def implied_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` options plus what they imply: a fixed_beta given without a
    threshold_mode asks for the fixed threshold (what --fixed-beta has always meant)."""
    options = dict(given)
    if "fixed_beta" in options and "threshold_mode" not in options:
        options["threshold_mode"] = "fixed"
    return options

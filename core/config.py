"""Flat configuration of one search (search-and-learn style)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

METHODS = ("specsearch", "ar", "sps", "small")


@dataclass
class SearchConfig:
    method: str = "specsearch"
    """Thought generator by registry name: specsearch | ar | sps | small."""
    beam_width: int = 2
    """Beams kept after each step (B)."""
    children: int = 4
    """Thoughts generated per beam per step (N)."""
    max_depth: int = 12
    """Maximum number of steps (thoughts) in a solution."""
    max_step_tokens: int = 192
    """Token budget of one thought."""
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.0
    seed: int = 0
    delimiter: str = "\n\n"
    """Thought delimiter: a thought ends where the model writes it."""
    aggregation: Literal["last", "min", "prod"] = "last"
    """How step scores combine into a path score for beam selection."""
    answer_selection: Literal["best", "weighted_vote"] = "best"
    """best: the finished leaf with the highest path score; weighted_vote: the
    answer whose finished leaves have the largest summed path score."""
    threshold_mode: Literal["adaptive", "fixed"] = "adaptive"
    """adaptive: beta from the large model's own scores (SpecSearch);
    fixed: a constant beta (Reward-Guided Speculative Decoding)."""
    theta: float = 0.9
    """EMA weight of the previous threshold: beta' = theta*beta + (1-theta)*Theta(scores)."""
    threshold_stat: Literal["mean", "max", "quantile"] = "mean"
    """Theta, the statistic of the large model's step scores that estimates its quality."""
    threshold_quantile: float = 0.5
    """q for threshold_stat = quantile."""
    fixed_beta: float = 0.5
    """The constant threshold when threshold_mode = fixed."""
    threshold_margin: float = 0.0
    """Added to beta before drafts are compared with it: a quality guard that
    trades acceptance (speed) for fewer accepted mistakes when the judge is weak."""
    spec_tokens: int = 4
    """Initial token-level draft length for speculative decoding (adapted at run time)."""
    system_prompt: str = (
        "Please reason step by step, separating steps with a blank line, "
        "and put your final answer within \\boxed{}."
    )

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        for name in ("beam_width", "children", "max_depth", "max_step_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0.0 <= self.theta <= 1.0:
            raise ValueError("theta must lie in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def threshold_fields(fixed_beta: float | None) -> dict[str, Any]:
    """SearchConfig's threshold fields for a user's optional constant β (None: adaptive)."""
    if fixed_beta is None:
        return {"threshold_mode": "adaptive"}
    return {"threshold_mode": "fixed", "fixed_beta": fixed_beta}

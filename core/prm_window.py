"""What a reward model reads of a path that does not fit its context: the window.

A PRM's input holds the question and every step of the path, so a long search
can outgrow the PRM's context while the writers still have room (or the PRM is
loaded with a smaller n_ctx).  Instead of failing, the path is shortened:

* the oldest steps are left out: the window is the scored (last) step and as
  many of the steps just before it as fit;
* when the question and the scored step alone are too long, the start of the
  step is cut (its end, where a step states its result, is kept).

The scored node is flagged (``ThoughtNode.prm_trimmed``).  Reward models say
whether an input fits through an optional ``fits(question, steps)``; one
without it (the arithmetic check) reads any path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .errors import ContextOverflowError


@dataclass(frozen=True)
class Window:
    steps: list[str]
    """The steps the PRM reads; the last is the scored step (perhaps cut at its start)."""
    trimmed: bool
    """Whether anything of the path was left out."""


def fit_path(prm: object, question: str, steps: Sequence[str]) -> Window:
    """The part of ``steps`` that ``prm`` reads when scoring the last one (see the module doc)."""
    fits: Callable[[str, Sequence[str]], bool] | None = getattr(prm, "fits", None)
    if fits is None or fits(question, steps):
        return Window(list(steps), False)
    if fits(question, steps[-1:]):
        # More steps make a longer input: the most recent steps that fit, by bisection.
        keep = _largest(1, len(steps) - 1, lambda n: fits(question, steps[-n:]))
        return Window(list(steps[-keep:]), True)
    last = steps[-1]
    if not fits(question, [""]):
        raise ContextOverflowError("the question does not fit the reward model's context; "
                                   "load the PRM with a larger n_ctx")
    kept = _largest(0, len(last) - 1, lambda n: fits(question, [last[len(last) - n:]]))
    return Window([last[len(last) - kept:]], True)


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The largest n in [lo, hi] with ok(n), given ok(lo) and ok monotone (true, then false)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo

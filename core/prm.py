"""Process reward models: a score in [0, 1] for each reasoning step.

Both kinds read logits through the engine's scoring primitive, so siblings
(candidate steps after the same parent) share the KV cache of their common
prefix and only their own tokens are evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from .engine import Engine, ScoreRequest


class RewardModel(Protocol):
    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        """One score in [0, 1] per step: how likely step i is correct given steps before it."""
        ...

    def score_last(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        """For each path, the score of its last step (batched over siblings)."""
        ...


def _two_way(logp: np.ndarray, good: list[int], bad: list[int]) -> float:
    """P(good) / (P(good) + P(bad)) from log-probs of candidate tokens (good first)."""
    p = np.exp(logp - logp.max())
    g, b = p[: len(good)].sum(), p[len(good) :].sum()
    return float(g / (g + b)) if g + b > 0 else 0.5


def _first_tokens(engine: Engine, words: Sequence[str]) -> list[int]:
    out: list[int] = []
    for w in words:
        toks = engine.tokenize(w, add_special=False)
        if toks and toks[0] not in out:
            out.append(toks[0])
    return out


@dataclass
class StepTagPRM:
    """Math-Shepherd style: steps joined by a tag; at each tag the model
    predicts a good ("+") or bad ("-") token."""

    engine: Engine
    tag: str = " ки"
    separator: str = "\n"
    good_token: str = "+"
    bad_token: str = "-"

    def __post_init__(self) -> None:
        self._good = _first_tokens(self.engine, [self.good_token])
        self._bad = [t for t in _first_tokens(self.engine, [self.bad_token]) if t not in self._good]
        if not self._good or not self._bad:
            raise ValueError("the good and bad tokens must tokenize to different tokens")

    def _request(self, question: str, steps: Sequence[str]) -> ScoreRequest:
        tokens = self.engine.tokenize(question + " ")
        positions = []
        for i, step in enumerate(steps):
            # Step-wise tokenisation keeps the tag token's position exact.
            tokens += self.engine.tokenize(step + self.tag, add_special=False)
            positions.append(len(tokens) - 1)
            if i < len(steps) - 1:
                tokens += self.engine.tokenize(self.separator, add_special=False)
        return ScoreRequest(tokens, positions, self._good + self._bad)

    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        if not steps:
            return []
        rows = self.engine.score([self._request(question, steps)])[0]
        return [_two_way(row, self._good, self._bad) for row in rows]

    def score_last(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        requests = []
        for path in paths:
            req = self._request(question, path)
            requests.append(ScoreRequest(req.tokens, [req.positions[-1]], req.candidates))
        rows = self.engine.score(requests)
        return [_two_way(r[0], self._good, self._bad) for r in rows]


JUDGE_SYSTEM = "You check math solutions step by step. Answer yes or no."
# The judged step comes last and earlier steps are numbered in order, so the
# judge prompt for step t extends the one for step t-1 up to step t-1's text:
# only the new step and the short question after it are evaluated (prefix reuse).
JUDGE_PROMPT = "Problem:\n{question}\n\nSolution so far:\n{steps}\n\nIs step {n} correct?"


@dataclass
class JudgePRM:
    """Any instruct model as judge: score = P(yes) / (P(yes) + P(no)) for the
    first answer token, through the model's own chat template."""

    engine: Engine
    prompt: str = JUDGE_PROMPT
    system: str = JUDGE_SYSTEM
    yes_words: Sequence[str] = ("yes", "Yes", " yes", " Yes", "YES")
    no_words: Sequence[str] = ("no", "No", " no", " No", "NO")

    def __post_init__(self) -> None:
        self._yes = _first_tokens(self.engine, self.yes_words)
        self._no = [t for t in _first_tokens(self.engine, self.no_words) if t not in self._yes]
        if not self._yes or not self._no:
            raise ValueError("the judge's yes and no words must tokenize to different tokens")

    def _request(self, question: str, steps: Sequence[str]) -> ScoreRequest:
        numbered = "\n".join(f"Step {i + 1}: {' '.join(s.split())}" for i, s in enumerate(steps))
        user = self.prompt.format(question=question, steps=numbered, n=len(steps))
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
        tokens = self.engine.chat_tokens(messages)
        return ScoreRequest(tokens, [len(tokens) - 1], self._yes + self._no)

    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        return self.score_last(question, [steps[: i + 1] for i in range(len(steps))])

    def score_last(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        if not paths:
            return []
        rows = self.engine.score([self._request(question, p) for p in paths])
        return [_two_way(r[0], self._yes, self._no) for r in rows]


PRM_KINDS = {"judge": JudgePRM, "step-tag": StepTagPRM}


def make_prm(kind: str, engine: Engine) -> RewardModel:
    try:
        return PRM_KINDS[kind](engine)
    except KeyError:
        raise ValueError(f"unknown PRM kind {kind!r}; choose from {', '.join(PRM_KINDS)}") from None

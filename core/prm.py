"""Process reward models: a score in [0, 1] for each reasoning step.

Both kinds read logits through the engine's scoring primitive, so siblings
(candidate steps after the same parent) share the KV cache of their common
prefix and only their own tokens are evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from .engine import Engine, ScoreRequest
from .errors import SpecSearchError
from .text import one_line


class RewardModel(Protocol):
    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        """One score in [0, 1] per step: how likely step i is correct given steps before it."""
        ...

    def score_last(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        """For each path, the score of its last step (batched over siblings)."""
        ...

    # Optional: ``fits(question, steps) -> bool``, whether the input for scoring the last
    # of ``steps`` fits the model's context (core.prm_window shortens paths that do not).


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


def nested_requests(token_lists: Sequence[list[int]], candidates: Sequence[int]) -> list[ScoreRequest]:
    """Requests for the next token after each of ``token_lists`` (the inputs of
    steps 1..n of one path).  When each input is a prefix of the last one (the
    usual case) that is one request with a position per step; otherwise one
    request per step, whose shared prefixes the engine still reuses."""
    last = token_lists[-1]
    if all(list(last[: len(t)]) == list(t) for t in token_lists):
        return [ScoreRequest(last, [len(t) - 1 for t in token_lists], candidates)]
    return [ScoreRequest(t, [len(t) - 1], candidates) for t in token_lists]


class VerdictScoring:
    """Scoring shared by the formats that read P(good) vs P(bad) at the last
    token of each step's input: subclasses give ``tokens(question, steps)``
    (ending at the scoring position), ``requests(question, steps)`` and the
    candidate ids ``_good`` / ``_bad``."""

    engine: Engine
    _good: list[int]
    _bad: list[int]

    def tokens(self, question: str, steps: Sequence[str]) -> list[int]:
        raise NotImplementedError

    def requests(self, question: str, steps: Sequence[str]) -> list[ScoreRequest]:
        raise NotImplementedError

    def fits(self, question: str, steps: Sequence[str]) -> bool:
        return len(self.tokens(question, steps)) < self.engine.n_ctx

    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        if not steps:
            return []
        rows = self.engine.score(self.requests(question, steps))
        return [_two_way(row, self._good, self._bad) for block in rows for row in block]

    def score_last(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        if not paths:
            return []
        if any(not p for p in paths):
            raise SpecSearchError("a path to score needs at least one step")
        requests = []
        for path in paths:
            tokens = self.tokens(question, path)
            requests.append(ScoreRequest(tokens, [len(tokens) - 1], self._good + self._bad))
        rows = self.engine.score(requests)
        return [_two_way(r[0], self._good, self._bad) for r in rows]


@dataclass
class StepTagPRM(VerdictScoring):
    """Math-Shepherd (peiyi9979/math-shepherd-mistral-7b-prm), as on its model card.

    Input: ``f"{question} {solution}"`` where the solution has one line per step,
    ``"Step {i}: {step} ки"``, lines joined by "\\n" (BOS as the tokenizer adds it).
    The score of step i is P(+) / (P(+) + P(-)) from the logits at the last
    token of its tag (they predict the token after the tag).  The candidates
    are "+" and "-" tokenized on their own, as the card's
    ``encode("+ -")[1:]`` does: "▁+" and "▁-" for Mistral's tokenizer.

    The whole input is tokenized at once, as the card does: tokenizing pieces
    separately would give sentencepiece vocabularies a space token at each
    piece's start.  Each step is put on one line (the model saw one line per
    step) and a tag inside the question or a step is removed.
    """

    engine: Engine
    tag: str = "ки"
    good_token: str = "+"
    bad_token: str = "-"

    def __post_init__(self) -> None:
        self.tag = self.tag.strip()  # the space before it belongs to the format
        self._good = _first_tokens(self.engine, [self.good_token])
        self._bad = [t for t in _first_tokens(self.engine, [self.bad_token]) if t not in self._good]
        if not self._good or not self._bad:
            raise SpecSearchError(
                f"the step-tag PRM needs {self.good_token!r} and {self.bad_token!r} to be different tokens, "
                f"but the vocabulary of {self.engine.name} tokenizes them alike"
            )

    def text(self, question: str, steps: Sequence[str]) -> str:
        """The model's input for ``steps``, ending with the last step's tag."""
        flat = [one_line(s.replace(self.tag, " ") if self.tag else s) for s in steps]  # a tag inside a step would end it
        lines = [f"Step {i + 1}: {s}".rstrip() + f" {self.tag}" for i, s in enumerate(flat)]
        return question.replace(self.tag, "").strip() + " " + "\n".join(lines)

    def tokens(self, question: str, steps: Sequence[str]) -> list[int]:
        return self.engine.tokenize(self.text(question, steps))

    def requests(self, question: str, steps: Sequence[str]) -> list[ScoreRequest]:
        """Requests scoring every step of ``steps`` (one, unless the inputs do not nest)."""
        token_lists = [self.tokens(question, steps[: i + 1]) for i in range(len(steps))]
        return nested_requests(token_lists, self._good + self._bad)

    def _request(self, question: str, steps: Sequence[str]) -> ScoreRequest:
        (request,) = self.requests(question, steps)
        return request



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
            raise PRMKindError(f"the judge PRM needs its yes and no words to be different tokens, but the "
                               f"vocabulary of {self.engine.name} tokenizes them alike")

    def _request(self, question: str, steps: Sequence[str]) -> ScoreRequest:
        numbered = "\n".join(f"Step {i + 1}: {' '.join(s.split())}" for i, s in enumerate(steps))
        user = self.prompt.format(question=question, steps=numbered, n=len(steps))
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
        tokens = self.engine.chat_tokens(messages)
        return ScoreRequest(tokens, [len(tokens) - 1], self._yes + self._no)

    def fits(self, question: str, steps: Sequence[str]) -> bool:
        return len(self._request(question, steps).tokens) < self.engine.n_ctx

    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        # One prefix at a time: the prompt for step t extends the one for step
        # t-1 up to its text, so each call reuses the previous call's KV cache
        # (batched together, only the prefix common to all would be shared).
        return [self.score_last(question, [steps[: i + 1]])[0] for i in range(len(steps))]

    def score_last(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        if not paths:
            return []
        rows = self.engine.score([self._request(question, p) for p in paths])
        return [_two_way(r[0], self._yes, self._no) for r in rows]


@dataclass(frozen=True)
class PRMKind:
    """One way of turning a model into a step scorer."""

    name: str
    factory: Callable[..., RewardModel]
    """factory(engine, head=None) -> RewardModel; engine is None for kinds that load no model."""
    description: str
    needs_model: bool = True


class PRMKindError(SpecSearchError):
    """A reward model cannot be built as asked: an unknown kind, a kind without the model it
    needs, or a model whose vocabulary cannot serve the kind."""


PRM_KINDS: dict[str, PRMKind] = {}

DEFAULT_PRM_KIND = "auto"
"""What solve, bench, prm eval and the app use when no kind is given: the best
measured option for the model at hand (kind auto: its shipped head, else judge)."""


def register_prm_kind(kind: PRMKind) -> None:
    PRM_KINDS[kind.name] = kind


def prm_kind_names() -> tuple[str, ...]:
    return tuple(PRM_KINDS)


def prm_kind(kind: str) -> PRMKind:
    """The registered kind called ``kind``; PRMKindError names the choices otherwise."""
    try:
        return PRM_KINDS[kind]
    except KeyError:
        raise PRMKindError(f"unknown PRM kind {kind!r}; choose from {', '.join(PRM_KINDS)}") from None


def make_prm(kind: str, engine: Engine | None, *, head: str | None = None) -> RewardModel:
    """The reward model of ``kind`` over ``engine``; ``head`` names a head file (kind ``head``)."""
    entry = prm_kind(kind)
    if entry.needs_model and engine is None:
        raise PRMKindError(f"PRM kind {kind!r} needs a reward model file (--prm P.gguf)")
    return entry.factory(engine, head=head)


register_prm_kind(PRMKind("judge", lambda engine, head=None: JudgePRM(engine),
                          "an instruct model answers yes/no per step; score = P(yes)"))
register_prm_kind(PRMKind("step-tag", lambda engine, head=None: StepTagPRM(engine),
                          "Math-Shepherd style PRM: P(+) vs P(-) at a tag after each step"))

# The exact arithmetic check registers kind "arith"; imported last because it uses the names above.
from . import arithmetic  # noqa: E402,F401
from . import prm_formats  # noqa: E402,F401  registers kinds chat-prm and genprm
from . import prm_head  # noqa: E402,F401  registers kind head

"""What a generate call takes and returns, shared by Engine and SpeculativeDecoder.

``TokenGenerator.generate`` is the one signature both implement: it checks
and packs the arguments into a ``GenerateRequest`` and hands it to ``run``.
``StopChecker`` is the per-sequence stop-string search both decode loops use.
"""

from __future__ import annotations

import codecs
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .sampling import GREEDY, SamplingParams


@dataclass
class Generation:
    text: str
    tokens: list[int]
    logprobs: list[float]
    finish_reason: str  # stop | eos | length | context | cancelled
    prompt_index: int = 0


@dataclass
class GenerateStats:
    wall_seconds: float = 0.0
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens served from the KV cache
    generated_tokens: int = 0
    decode_calls: int = 0
    drafted: int = 0
    accepted: int = 0
    target_passes: int = 0
    draft_seconds: float = 0.0
    target_seconds: float = 0.0
    # A served model (core.remote_model): its requests, their summed wall time, and the
    # server's own prompt + generation time for the requests whose answer reported it.
    remote_requests: int = 0
    remote_seconds: float = 0.0
    server_seconds: float = 0.0
    server_timed_requests: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None

    def to_dict(self, speculative: bool = False) -> dict:
        out = {
            "wall_seconds": self.wall_seconds,
            "tokens_per_second": self.tokens_per_second,
            "prompt_tokens": self.prompt_tokens,
            "reused_tokens": self.reused_tokens,
            "generated_tokens": self.generated_tokens,
            "decode_calls": self.decode_calls,
        }
        if speculative:
            out.update(
                drafted=self.drafted,
                accepted=self.accepted,
                acceptance_rate=self.acceptance_rate,
                target_passes=self.target_passes,
            )
        return out


@dataclass
class GenerateOutput:
    generations: list[Generation]
    stats: GenerateStats = field(default_factory=GenerateStats)

    @property
    def texts(self) -> list[str]:
        return [g.text for g in self.generations]


@dataclass(frozen=True)
class GenerateRequest:
    """The arguments of one generate call, checked: sequence k continues
    ``prompts[k // n]`` and samples with ``seeds[k]``."""

    prompts: list[list[int]]
    n: int
    max_tokens: int
    sampling: SamplingParams
    seeds: list[int]
    stop: Sequence[str]
    logprobs: bool
    should_stop: Callable[[], bool] | None

    @property
    def prompt_of(self) -> list[int]:
        """The prompt index of each sequence."""
        return [i for i in range(len(self.prompts)) for _ in range(self.n)]


class StopChecker:
    """Incremental detokenisation and stop-string search for one sequence."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""

    def push(self, piece: bytes) -> bool:
        """Add a token's bytes; True (and text cut before the stop) when a stop string appeared."""
        start = len(self.text)
        self.text += self._decoder.decode(piece)
        for stop in self.stops:
            idx = self.text.find(stop, max(0, start - len(stop) + 1))
            if idx >= 0:
                self.text = self.text[:idx]
                return True
        return False

    def finish(self) -> str:
        self.text += self._decoder.decode(b"", final=True)
        return self.text


class TokenGenerator(ABC):
    """Something that continues token prompts: a model, or a model with a draft."""

    def generate(
        self,
        prompts: Sequence[Sequence[int]] | Sequence[int],
        n: int = 1,
        *,
        max_tokens: int = 128,
        sampling: SamplingParams = GREEDY,
        seeds: Sequence[int] | None = None,
        stop: Sequence[str] = (),
        logprobs: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> GenerateOutput:
        """n continuations of each prompt (token lists), decoded together.

        ``should_stop`` is polled once per decoding step; when it returns True
        every unfinished sequence ends with finish reason "cancelled".

        ``logprobs=False`` skips the per-token log-probabilities (a pass over
        the whole vocabulary per token; the search does not need them).

        Sequence k (prompt k // n, child k % n) samples with ``seeds[k]``
        (default: 0, 1, 2, ...): the same seed gives the same continuation
        whether it runs alone or batched with others.
        """
        prompt_list = _as_prompt_list(prompts)
        total = len(prompt_list) * n
        seed_list = list(seeds) if seeds is not None else list(range(total))
        if len(seed_list) != total:
            raise ValueError(f"need {total} seeds, got {len(seed_list)}")
        return self.run(GenerateRequest(prompt_list, n, max_tokens, sampling, seed_list, tuple(stop),
                                        logprobs, should_stop))

    @abstractmethod
    def run(self, request: GenerateRequest) -> GenerateOutput:
        """``generate`` with its arguments checked and packed."""


def _as_prompt_list(prompts: Sequence[Sequence[int]] | Sequence[int]) -> list[list[int]]:
    if prompts and isinstance(prompts[0], (int, np.integer)):
        return [list(prompts)]  # type: ignore[arg-type]
    return [list(p) for p in prompts]  # type: ignore[union-attr]

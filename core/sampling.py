"""Sampling settings and their distribution in numpy.

The native sampler chain (llama_adapter.SamplerChain) draws tokens during
plain generation; speculative sampling needs the probabilities themselves
(p of the target, q of the draft), computed here with the same truncation
order as llama.cpp: top-k, top-p, min-p (on the untempered softmax), then
temperature.  With top-k on, only k entries are ever touched, so a
150k-entry vocabulary costs one argpartition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .options import Bounds, check_bounds

SAMPLING_BOUNDS = {
    "temperature": Bounds(0.0),
    "top_k": Bounds(0, kind=int),
    "top_p": Bounds(0.0, 1.0),
    "min_p": Bounds(0.0, 1.0),
}
"""The values each sampling setting takes (SearchConfig's fields of the same names share them)."""


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.0

    def __post_init__(self) -> None:
        check_bounds(self, SAMPLING_BOUNDS)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


GREEDY = SamplingParams(temperature=0.0)


def logsumexp_rows(logits: np.ndarray) -> np.ndarray:
    """logsumexp over the last axis; float32 work (the hot path), float64 result."""
    x = np.asarray(logits, dtype=np.float32)
    m = x.max(axis=-1, keepdims=True)
    s = np.exp(x - m).sum(axis=-1, keepdims=True, dtype=np.float64)
    return m.astype(np.float64) + np.log(s)


def log_softmax_at(logits: np.ndarray, tokens: np.ndarray | list[int]) -> np.ndarray:
    """log softmax(logits)[tokens], for one row or a 2-D block of rows."""
    x = np.asarray(logits)
    return np.take(x, tokens, axis=-1).astype(np.float64) - logsumexp_rows(x)


def distribution(logits: np.ndarray, params: SamplingParams) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, probabilities) of the sampling distribution; greedy is one-hot."""
    x = np.asarray(logits, dtype=np.float64)
    if params.greedy:
        return np.array([int(np.argmax(x))]), np.array([1.0])
    if 0 < params.top_k < x.shape[0]:
        ids = np.argpartition(x, -params.top_k)[-params.top_k :]
    else:
        ids = np.arange(x.shape[0])
    vals = x[ids]
    order = np.argsort(-vals, kind="stable")
    ids, vals = ids[order], vals[order]
    if params.top_p < 1.0 or params.min_p > 0.0:
        p = np.exp(vals - vals[0])
        p /= p.sum()
        keep = len(ids)
        if params.top_p < 1.0:
            keep = min(keep, int(np.searchsorted(np.cumsum(p), params.top_p) + 1))
        if params.min_p > 0.0:
            keep = min(keep, max(1, int((p >= params.min_p * p[0]).sum())))
        ids, vals = ids[:keep], vals[:keep]
    z = (vals - vals[0]) / params.temperature
    probs = np.exp(z)
    return ids, probs / probs.sum()


def sample_from(ids: np.ndarray, probs: np.ndarray, rng: np.random.Generator) -> int:
    return int(ids[min(int(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum())), len(ids) - 1)])

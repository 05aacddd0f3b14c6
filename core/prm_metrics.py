"""How well step scores find the first wrong step (ProcessBench metrics).

Every function takes, per item, the step scores and the ProcessBench label
(index of the first wrong step, or -1 when every step is right):

* :func:`step_auroc` -- AUROC of the scores as a good-vs-first-wrong step
  classifier.  Good steps: the steps before the first error and every step of
  a correct item; negatives: the first wrong steps.  Steps after the first
  error are left out (whether they are "wrong" is not defined).
* :func:`processbench_f1` -- ProcessBench's F1 at a threshold: a step is
  predicted wrong when its score is below the threshold, an item's prediction
  is its first such step (-1 for none); F1 is the harmonic mean of the
  accuracy on erroneous items (prediction == label) and on correct items
  (prediction == -1).
* :func:`best_threshold` -- the threshold with the highest F1 (exactly, over
  every threshold that changes a prediction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["F1Result", "auroc", "best_threshold", "predicted_first_wrong", "processbench_f1",
           "step_auroc", "step_classes"]

Scores = Sequence[Sequence[float]]


def step_classes(scores: Scores, labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(good step scores, first-wrong step scores); steps after the first error are dropped.

    An erroneous item may come with only its steps up to the first error
    scored (nothing after it counts); its first wrong step must be scored.
    """
    good: list[float] = []
    bad: list[float] = []
    for item_scores, label in zip(scores, labels, strict=True):
        if label < 0:
            good.extend(item_scores)
            continue
        if label >= len(item_scores):
            raise ValueError(f"label {label} but only {len(item_scores)} step scores")
        good.extend(item_scores[:label])
        bad.append(item_scores[label])
    return np.asarray(good, dtype=float), np.asarray(bad, dtype=float)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """P(a random positive scores above a random negative), ties counting 1/2.

    Exact (Mann-Whitney U from average ranks); None when a class is empty.
    """
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if pos.size == 0 or neg.size == 0:
        return None
    values = np.concatenate([pos, neg])
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Average 1-based rank of each run of equal values.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    run_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(run_rank, ends - starts)
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def step_auroc(scores: Scores, labels: Sequence[int]) -> float | None:
    """AUROC of good steps (positives) against first wrong steps (negatives)."""
    return auroc(*step_classes(scores, labels))


def predicted_first_wrong(item_scores: Sequence[float], threshold: float) -> int:
    """Index of the first step scoring below ``threshold``, or -1."""
    for i, s in enumerate(item_scores):
        if s < threshold:
            return i
    return -1


@dataclass(frozen=True)
class F1Result:
    threshold: float
    f1: float | None
    """None when the items lack erroneous or correct ones (an accuracy is undefined)."""
    accuracy_erroneous: float | None
    accuracy_correct: float | None


def _harmonic(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def processbench_f1(scores: Scores, labels: Sequence[int], threshold: float) -> F1Result:
    """ProcessBench F1 when steps scoring below ``threshold`` are predicted wrong."""
    hits = {True: [], False: []}  # has an error -> per-item correct prediction
    for item_scores, label in zip(scores, labels, strict=True):
        hits[label >= 0].append(predicted_first_wrong(item_scores, threshold) == label)
    acc_err = float(np.mean(hits[True])) if hits[True] else None
    acc_ok = float(np.mean(hits[False])) if hits[False] else None
    return F1Result(threshold, _harmonic(acc_err, acc_ok), acc_err, acc_ok)


def _hit_intervals(scores: Scores, labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item, the thresholds t with a right prediction form the interval (low, high].

    An erroneous item (label L) is right when steps 0..L-1 all score >= t and
    step L scores < t: low = score[L], high = min(score[:L]) (inf if L = 0).
    A correct item is right when no step scores < t: low = -inf, high = min.
    """
    low, high, erroneous = [], [], []
    for item_scores, label in zip(scores, labels, strict=True):
        s = np.asarray(item_scores, dtype=float)
        if label < 0:
            low.append(-np.inf)
            high.append(s.min() if s.size else np.inf)
        else:
            if label >= s.size:
                raise ValueError(f"label {label} but only {s.size} step scores")
            low.append(s[label])
            high.append(s[:label].min() if label else np.inf)
        erroneous.append(label >= 0)
    return np.asarray(low), np.asarray(high), np.asarray(erroneous, dtype=bool)


def best_threshold(scores: Scores, labels: Sequence[int]) -> F1Result:
    """The threshold maximising ProcessBench F1 on these items (and that F1).

    Predictions change only where the threshold crosses a score, so one
    threshold per gap between neighbouring distinct scores covers every
    case; the midpoint of the gap is used, which transfers better to other
    data than the gap's edge (scores after a first error play no part).  The
    lowest candidate predicts nothing wrong, the highest everything.  Ties go
    to the lowest threshold.  F1 is None (threshold 0.5) when erroneous or
    correct items are missing.
    """
    low, high, erroneous = _hit_intervals(scores, labels)
    n_err, n_ok = int(erroneous.sum()), int((~erroneous).sum())
    if n_err == 0 or n_ok == 0:
        return processbench_f1(scores, labels, 0.5)
    judged = [s if label < 0 else s[: label + 1] for s, label in zip(scores, labels)]
    values = np.unique(np.concatenate([np.asarray(s, dtype=float) for s in judged]))
    mids = (values[:-1] + values[1:]) / 2.0
    mids = np.where(mids > values[:-1], mids, values[1:])  # adjacent floats: the midpoint rounds down
    candidates = np.concatenate([values[:1], mids, [np.nextafter(values[-1], np.inf)]])
    acc_err = _count_inside(low[erroneous], high[erroneous], candidates) / n_err
    acc_ok = _count_inside(low[~erroneous], high[~erroneous], candidates) / n_ok
    total = acc_err + acc_ok
    f1 = np.divide(2 * acc_err * acc_ok, total, out=np.zeros_like(total), where=total > 0)
    best = int(np.argmax(f1))  # first maximum: the lowest threshold
    return F1Result(float(candidates[best]), float(f1[best]), float(acc_err[best]), float(acc_ok[best]))


def _count_inside(low: np.ndarray, high: np.ndarray, t: np.ndarray) -> np.ndarray:
    """For each t, how many intervals (low, high] contain it (by sorted counts, not a matrix)."""
    keep = low < high  # an empty interval never holds
    low, high = np.sort(low[keep]), np.sort(high[keep])
    # #(low < t) - #(high < t): every interval with high < t also has low < t.
    return np.searchsorted(low, t, side="left") - np.searchsorted(high, t, side="left")

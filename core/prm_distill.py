"""Distilling a step judge into a head on the drafter (``specsearch prm distill``).

A head on the large model judges the drafter's thoughts better than any head
on the drafter trained on labels (README, *Step judges*), but every draft then
costs a prefill of the large model.  A student head on the drafter learns to
predict the teacher's score from what the drafter computes anyway while
writing (its hidden state and log-probs), so a search scores drafts for free.
The teacher's scores need no labels: any solutions the drafter wrote will do.

The fit is ridge regression of the teacher's logit on the standardised
student features, closed form; the result is an ordinary one-layer head whose
sigmoid output is on the teacher's scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .engine import Engine
from .prm_head import Head, file_sha256
from .prm_metrics import step_auroc
from .prm_train import FeatureSet, extract_features, scores_by_item, split_items
from .processbench import ProcessItem

_CLIP = 1e-4  # a teacher score of exactly 0 or 1 would have an infinite logit


@dataclass
class DistillReport:
    head: Head
    train_steps: int
    val_steps: int
    val_correlation: float
    """Pearson correlation of student and teacher scores on the held-out items."""
    val_auroc: float | None
    """The student's step AUROC against the items' labels on the held-out items (None: one class only)."""
    teacher_val_auroc: float | None
    """The teacher's, on the same steps."""


def teacher_scores(teacher: Engine, head: Head, items: Sequence[ProcessItem],
                   on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The teacher head's score of every judged step of ``items``, in extract_features' row order."""
    rows = extract_features(teacher, items, list(head.features), prompt_format=head.prompt_format, meta=head.meta,
                            on_progress=on_progress)
    return head.predict(rows.x)


def fit_student(student: FeatureSet, targets: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(weights, mean, scale, bias) of the ridge fit of logit(targets) on standardised ``student.x``;
    the penalty is ``l2`` per training row, so it means the same for any amount of data."""
    t = np.clip(np.asarray(targets, dtype=np.float64), _CLIP, 1 - _CLIP)
    y = np.log(t / (1 - t))
    mean = student.x.mean(axis=0)
    scale = student.x.std(axis=0) + 1e-6
    z = (student.x - mean) / scale
    bias = float(y.mean())
    gram = z.T @ z + l2 * len(y) * np.eye(z.shape[1])
    weights = np.linalg.solve(gram, z.T @ (y - bias))
    return weights, mean, scale, bias


def distill_head(student: Engine, features: FeatureSet, feature_names: Sequence[str], targets: np.ndarray,
                 items: Sequence[ProcessItem], l2: float, held_out: float = 0.2, seed: int = 0,
                 meta: dict | None = None) -> DistillReport:
    """A head on ``student`` fitted to the teacher's ``targets`` (one per row of ``features``, rows of
    ``items``), reported on a held-out item split against the teacher and, where the items are labelled
    both ways, against their labels; ``held_out`` 0 fits on every item and reports nothing."""
    va_items = split_items(len(items), held_out, seed)[1] if held_out > 0 else np.array([], dtype=int)
    in_val = np.isin(features.item, va_items)
    train, val = features.rows(~in_val), features.rows(in_val)
    weights, mean, scale, bias = fit_student(train, targets[~in_val], l2)
    head = Head(
        backbone_sha256=file_sha256(student.path), hidden_size=student.facts.n_embd, prompt_format="drafter-chat",
        features=tuple(feature_names), layers=[(weights[:, None], np.array([bias]))], mean=mean, scale=scale,
        output="sigmoid", meta=dict(meta or {}),
    )
    if not len(val.y):
        return DistillReport(head, len(train.y), 0, float("nan"), None, None)
    predicted, teacher = head.predict(val.x), targets[in_val]
    correlation = float(np.corrcoef(predicted, teacher)[0, 1]) if len(val.y) > 1 and teacher.std() > 0 else float("nan")
    labels = [items[i].label for i in va_items]
    return DistillReport(
        head, len(train.y), len(val.y), correlation,
        step_auroc(scores_by_item(predicted, val.item, va_items), labels),
        step_auroc(scores_by_item(teacher, val.item, va_items), labels),
    )


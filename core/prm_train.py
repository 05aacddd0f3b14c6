"""Training learned PRM heads (``specsearch prm train``), in numpy.

Features come from :func:`.prm_head.step_features` -- the code that scores at
run time -- so a head sees the same numbers in training and in a search.
Items are split into training and held-out sets by item (never a solution's
steps on both sides).  Models: logistic regression (L2) or a one-hidden-layer
MLP (ReLU, L2, Adam), both with early stopping on held-out AUROC, then Platt
calibration on the held-out set folded into the last layer, so the head's
output is a calibrated P(step correct).  A head on the hidden state can first
have it reduced (ReduceConfig: confound erasure and PCA, core.prm_reduce); the
fitted head is folded back onto the raw hidden state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .engine import Engine
from .prm_head import PROMPT_FORMATS, Head, file_sha256, step_features
from .prm_metrics import auroc, best_threshold, step_auroc
from .prm_reduce import CONFOUND_FEATURES, fit_reduction, fold_into_head
from .processbench import ProcessItem


@dataclass
class FeatureSet:
    x: np.ndarray  # [steps, features]
    y: np.ndarray  # 1: correct step, 0: first wrong step
    item: np.ndarray  # index of the item each row comes from
    step: np.ndarray  # step index within its item

    def rows(self, mask: np.ndarray) -> "FeatureSet":
        return FeatureSet(self.x[mask], self.y[mask], self.item[mask], self.step[mask])


def extract_features(
    engine: Engine, items: Sequence[ProcessItem], features: Sequence[str], prompt_format: str = "drafter-chat",
    meta: dict | None = None, on_progress: Callable[[int, int], None] | None = None,
) -> FeatureSet:
    """Feature rows of every judged step (steps after a first error are left out)."""
    layout = PROMPT_FORMATS[prompt_format]
    xs, ys, its, sts = [], [], [], []
    for n, it in enumerate(items):
        steps = list(it.judged_steps)
        lay = layout(engine, it.problem, steps, meta or {})
        rows = step_features(engine, features, [lay], [steps], last_only=False)[0]
        xs.append(rows)
        ys += [0 if k == it.label else 1 for k in range(len(steps))]
        its += [n] * len(steps)
        sts += list(range(len(steps)))
        if on_progress is not None:
            on_progress(n + 1, len(items))
    return FeatureSet(np.concatenate(xs), np.array(ys), np.array(its), np.array(sts))


def split_items(n_items: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Item indices for training and held-out evaluation."""
    order = list(range(n_items))
    random.Random(seed).shuffle(order)
    k = max(1, int(round(n_items * held_out)))
    return np.array(sorted(order[k:])), np.array(sorted(order[:k]))


def split_features(features: FeatureSet, n_items: int, held_out: float, seed: int
                   ) -> tuple[FeatureSet, FeatureSet, np.ndarray]:
    """Training rows, held-out rows and the held-out item indices (an item's steps stay on one side)."""
    tr_items, va_items = split_items(n_items, held_out, seed)
    return features.rows(np.isin(features.item, tr_items)), features.rows(np.isin(features.item, va_items)), va_items


def scores_by_item(scores: np.ndarray, item: np.ndarray, items: Sequence[int]) -> list[list[float]]:
    """Per-row ``scores`` grouped into one list per item of ``items`` (rows of ``item``), as the metrics take them."""
    return [scores[item == i].tolist() for i in items]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def _auroc(p: np.ndarray, y: np.ndarray) -> float:
    """AUROC of scores ``p`` for labels ``y`` (1: correct step); 0.5 with one class only."""
    value = auroc(p[y == 1], p[y == 0])
    return value if value is not None else 0.5


@dataclass
class FitConfig:
    model: str = "logistic"
    """logistic | mlp"""
    hidden: int = 64
    """MLP hidden units."""
    l2: float = 1e-2
    """L2 weight penalty (per example, on the standardised features)."""
    lr: float = 3e-3
    epochs: int = 300
    patience: int = 30
    """Epochs without a better held-out AUROC before stopping."""
    balance: bool = True
    """Weight classes equally (first-wrong steps are the minority)."""
    seed: int = 0


def fit_head(train: FeatureSet, val: FeatureSet, config: FitConfig) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Layers (standardised input) and the standardisation, fitted by full-batch Adam."""
    mean = train.x.mean(axis=0)
    scale = train.x.std(axis=0) + 1e-6
    xt, xv = (train.x - mean) / scale, (val.x - mean) / scale
    yt = train.y.astype(np.float64)
    w_pos = 0.5 / max(1e-9, yt.mean()) if config.balance else 1.0
    w_neg = 0.5 / max(1e-9, 1 - yt.mean()) if config.balance else 1.0
    sample_w = np.where(yt == 1, w_pos, w_neg)
    rng = np.random.default_rng(config.seed)
    d = xt.shape[1]
    if config.model == "mlp":
        params = [rng.normal(0, d**-0.5, (d, config.hidden)), np.zeros(config.hidden),
                  rng.normal(0, config.hidden**-0.5, (config.hidden, 1)), np.zeros(1)]
    elif config.model == "logistic":
        params = [np.zeros((d, 1)), np.zeros(1)]
    else:
        raise ValueError(f"unknown head model {config.model!r}; choose logistic or mlp")

    def forward(x, ps):
        if len(ps) == 2:
            return (x @ ps[0] + ps[1])[:, 0], None
        h = np.maximum(x @ ps[0] + ps[1], 0)
        return (h @ ps[2] + ps[3])[:, 0], h

    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    best, best_params, waited = -1.0, [p.copy() for p in params], 0
    n = len(yt)
    for epoch in range(1, config.epochs + 1):
        z, h = forward(xt, params)
        g = (_sigmoid(z) - yt) * sample_w / n  # d loss / d z
        if len(params) == 2:
            grads = [xt.T @ g[:, None], np.array([g.sum()])]
        else:
            gh = (g[:, None] @ params[2].T) * (h > 0)
            grads = [xt.T @ gh, gh.sum(axis=0), h.T @ g[:, None], np.array([g.sum()])]
        for i in range(0, len(params), 2):  # L2 on weights, not biases
            grads[i] = grads[i] + config.l2 * params[i]
        for i, (p, gr) in enumerate(zip(params, grads)):
            m[i] = 0.9 * m[i] + 0.1 * gr
            v[i] = 0.999 * v[i] + 0.001 * gr * gr
            mh, vh = m[i] / (1 - 0.9**epoch), v[i] / (1 - 0.999**epoch)
            p -= config.lr * mh / (np.sqrt(vh) + 1e-8)
        score = _auroc(forward(xv, params)[0], val.y)
        if score > best + 1e-5:
            best, best_params, waited = score, [p.copy() for p in params], 0
        else:
            waited += 1
            if waited >= config.patience:
                break
    layers = [(best_params[i], best_params[i + 1]) for i in range(0, len(best_params), 2)]
    return layers, mean, scale


def platt(z: np.ndarray, y: np.ndarray, iters: int = 200) -> tuple[float, float]:
    """a, b with sigmoid(a z + b) calibrated on (z, y), by Newton's method."""
    a, b = 1.0, 0.0
    for _ in range(iters):
        p = _sigmoid(a * z + b)
        r = p - y
        w = np.maximum(p * (1 - p), 1e-9)
        g = np.array([(r * z).sum(), r.sum()])
        hess = np.array([[(w * z * z).sum(), (w * z).sum()], [(w * z).sum(), w.sum()]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-8:
            break
    return float(a), float(b)


def fold_calibration(head: Head, val: FeatureSet) -> None:
    """Platt-calibrate ``head`` on ``val`` and fold the calibration into its last
    layer, so ``head.predict`` gives a calibrated P(step correct)."""
    a, b = platt(head.logits(val.x)[:, 0], val.y.astype(np.float64))
    w, bias = head.layers[-1]
    head.layers[-1] = (w * a, bias * a + b)


@dataclass
class TrainReport:
    head: Head
    train_steps: int
    val_steps: int
    val_auroc: float | None
    val_f1: float | None
    val_threshold: float | None


@dataclass
class ReduceConfig:
    components: int
    """Principal directions of the hidden state the head reads (core.prm_reduce)."""
    erase: bool = True
    """Erase the step's length and count of numbers from the hidden state first."""


def reduced_feature_names(feature_names: Sequence[str], reduce: ReduceConfig) -> list[str]:
    """What to extract for a reduced head: the hidden state first, the other features,
    then the confounds erasure needs (they are not inputs of the head)."""
    if "hidden" not in feature_names:
        raise ValueError("reducing the hidden state needs the hidden feature")
    others = [f for f in feature_names if f != "hidden"]
    return ["hidden", *others, *(CONFOUND_FEATURES if reduce.erase else ())]


def _fit_reduced(train: FeatureSet, val: FeatureSet, config: FitConfig, reduce: ReduceConfig, hidden_size: int,
                 n_other: int) -> tuple[list, np.ndarray, np.ndarray]:
    """fit_head on [other features, reduced hidden], folded back onto [hidden, other features]."""
    inputs = slice(0, hidden_size + n_other)
    confounds = train.x[:, hidden_size + n_other:] if reduce.erase else None
    reduction = fit_reduction(train.x[:, :hidden_size], reduce.components, confounds)

    def reduced(fs: FeatureSet) -> FeatureSet:
        x = np.hstack([fs.x[:, hidden_size:hidden_size + n_other], reduction.apply(fs.x[:, :hidden_size])])
        return FeatureSet(x, fs.y, fs.item, fs.step)

    layers, mean, scale = fit_head(reduced(train), reduced(val), config)
    layers, mean, scale = fold_into_head(layers, mean, scale, reduction, n_other)
    val.x = val.x[:, inputs]
    return layers, mean, scale


def train_head(
    backbone: Engine, features: FeatureSet, items: Sequence[ProcessItem], feature_names: Sequence[str],
    config: FitConfig, held_out: float = 0.2, prompt_format: str = "drafter-chat", meta: dict | None = None,
    reduce: ReduceConfig | None = None,
) -> TrainReport:
    """Fit a head on ``features`` (rows of ``items``), evaluate on a held-out item split.

    With ``reduce``, ``features`` were extracted for :func:`reduced_feature_names`
    and the head reads ("hidden", the other features)."""
    train, val, va_items = split_features(features, len(items), held_out, config.seed)
    if reduce is None:
        layers, mean, scale = fit_head(train, val, config)
    else:
        feature_names = ["hidden", *(f for f in feature_names if f != "hidden")]
        n_other = len(feature_names) - 1
        layers, mean, scale = _fit_reduced(train, val, config, reduce, backbone.facts.n_embd, n_other)
        meta = {**(meta or {}), "reduction": {"components": reduce.components, "erased": list(
            CONFOUND_FEATURES if reduce.erase else ())}}
    head = Head(
        backbone_sha256=file_sha256(backbone.path), hidden_size=backbone.facts.n_embd, prompt_format=prompt_format,
        features=tuple(feature_names), layers=layers, mean=mean, scale=scale, output="sigmoid", meta=dict(meta or {}),
    )
    fold_calibration(head, val)
    per_item = scores_by_item(head.predict(val.x), val.item, va_items)
    labels = [items[i].label for i in va_items]
    f1 = best_threshold(per_item, labels)
    return TrainReport(head, len(train.y), len(val.y), step_auroc(per_item, labels), f1.f1, f1.threshold)

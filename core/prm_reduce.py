"""Shrinking a head's hidden-state input before it is fitted: confound erasure and PCA.

A backbone's 896-d hidden state holds far more than a few hundred labelled steps
can fit (a head on all of it overfits), and it also encodes how long the step
is and how many numbers it writes.  On ProcessBench those two predict a first
wrong step well, but a head that leans on them makes a search prefer steps that
compute nothing (see README, "The shipped head").  So, fitted on the training
rows only:

1. erasure: the directions of hidden space that a linear regression on the
   confounds (log step length, log count of number tokens) predicts are
   projected out, so no linear read of what is left recovers them;
2. PCA: the remaining variance is reduced to ``components`` directions.

The fitted head is then folded back onto the raw hidden state
(:func:`fold_into_head`): the result is an ordinary head file over
``("hidden", ...)`` that scores with the unchanged run-time code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFOUND_FEATURES = ("log_tokens", "log_digit_tokens")
"""What erasure removes from the hidden state: the step's length and its count of number tokens."""


@dataclass
class HiddenReduction:
    mean: np.ndarray  # [hidden]
    basis: np.ndarray  # [hidden, components]: reduced = (h - mean) @ basis

    def apply(self, hidden: np.ndarray) -> np.ndarray:
        return (np.asarray(hidden, dtype=np.float64) - self.mean) @ self.basis


def fit_reduction(hidden: np.ndarray, components: int, confounds: np.ndarray | None = None) -> HiddenReduction:
    """Erase what ``confounds`` [rows, c] linearly predict from ``hidden`` [rows, h], then
    keep the top ``components`` principal directions of the rest."""
    h = np.asarray(hidden, dtype=np.float64)
    if not 1 <= components <= min(h.shape):
        raise ValueError(f"components must lie between 1 and {min(h.shape)} (rows and hidden size); got {components}")
    mean = h.mean(axis=0)
    centred = h - mean
    eraser = np.eye(h.shape[1])
    if confounds is not None:
        c = np.asarray(confounds, dtype=np.float64)
        c = c - c.mean(axis=0)
        coef = np.linalg.lstsq(c, centred, rcond=None)[0]  # [c, h]: the directions the confounds move
        q, _ = np.linalg.qr(coef.T)
        eraser = eraser - q @ q.T
    _, _, vt = np.linalg.svd(centred @ eraser, full_matrices=False)
    # eraser is symmetric, so (h - mean) @ eraser @ V == (h - mean) @ (eraser @ V)
    return HiddenReduction(mean, eraser @ vt[:components].T)


def fold_into_head(layers: list[tuple[np.ndarray, np.ndarray]], mean: np.ndarray, scale: np.ndarray,
                   reduction: HiddenReduction, n_other: int) -> tuple[list, np.ndarray, np.ndarray]:
    """A head fitted on ``[other features (n_other), reduced hidden]`` (standardised by
    ``mean``/``scale``) as the same function of ``[raw hidden, other features]``.

    The first layer is linear before its activation, so the reduction and the
    standardisation of the reduced part fold into its weights and bias."""
    w, b = layers[0]
    w_other, w_red = w[:n_other], w[n_other:]
    m_red, s_red = mean[n_other:], scale[n_other:]
    w_hidden = reduction.basis @ (w_red / s_red[:, None])
    # ((h - mean) @ basis - m_red) / s_red @ w_red == h @ w_hidden - ((mean @ basis + m_red) / s_red) @ w_red
    b_new = b - ((reduction.mean @ reduction.basis + m_red) / s_red) @ w_red
    hidden_size = reduction.basis.shape[0]
    new_mean = np.concatenate([np.zeros(hidden_size), mean[:n_other]])
    new_scale = np.concatenate([np.ones(hidden_size), scale[:n_other]])
    return [(np.vstack([w_hidden, w_other]), b_new), *layers[1:]], new_mean, new_scale

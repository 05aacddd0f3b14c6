"""Compare learned step-judge heads on one backbone, as in the README's *Step judges* tables.

    python tests/judge_candidates.py extract MODEL.gguf ITEMS.json|gsm8k OUT.npz [THREADS]
    python tests/judge_candidates.py fit TRAIN.npz EVAL.npz

``extract`` reads every head feature (the hidden state and all scalar features)
of every judged step with the product's own code (``core.prm_train.
extract_features``, the drafter's chat layout a search uses); ``fit`` trains
the candidate heads on TRAIN with the product's fitting code (held-out split,
early stopping, Platt calibration) and reports on EVAL: step AUROC,
ProcessBench F1 at the best threshold (oracle), at the threshold chosen on the
training data's held-out items, and at a threshold chosen on the other half of
EVAL (two folds: what ``prm eval --n`` does), plus the correlation of the
scores of good steps with step length (a search-safe head keeps it small).
EVAL's labels come from the file itself.  Not a test module (no test_ prefix).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from specsearch.core.config import SearchConfig
from specsearch.core.engine import Engine, LoadOptions
from specsearch.core.prm_head import FEATURES, SEARCH_SAFE_FEATURES, Head
from specsearch.core.prm_metrics import best_threshold, processbench_f1, step_auroc
from specsearch.core.prm_train import (FeatureSet, FitConfig, ReduceConfig, _fit_reduced, extract_features,
                                       fit_head, fold_calibration, reduced_feature_names, scores_by_item,
                                       split_features)
from specsearch.core.processbench import load_process_set


def extract(model: str, items_spec: str, out: str, threads: int = 1) -> None:
    items = load_process_set(items_spec).items
    config = SearchConfig()
    started = time.time()

    def progress(done: int, total: int) -> None:
        if done % 25 == 0 or done == total:
            print(f"{done}/{total} items, {time.time() - started:.0f} s", file=sys.stderr, flush=True)

    with Engine(model, LoadOptions(n_threads=threads)) as engine:
        fs = extract_features(engine, items, list(FEATURES), on_progress=progress,
                              meta={"system_prompt": config.system_prompt, "delimiter": config.delimiter})
        labels = np.array([it.label for it in items])
        np.savez(out, x=fs.x, y=fs.y, item=fs.item, step=fs.step, labels=labels, n_embd=engine.facts.n_embd)


class Table:
    """A feature file's columns by feature name (the hidden state spans n_embd columns)."""

    def __init__(self, path: str) -> None:
        data = np.load(path)
        self.x, self.y, self.item, self.step = data["x"], data["y"], data["item"], data["step"]
        self.labels = [int(v) for v in data["labels"]]
        self.hidden_size = int(data["n_embd"])
        self.cols, at = {}, 0
        for name in FEATURES:
            width = self.hidden_size if name == "hidden" else 1
            self.cols[name] = list(range(at, at + width))
            at += width

    def features(self, names: list[str]) -> FeatureSet:
        idx = [c for n in names for c in self.cols[n]]
        return FeatureSet(self.x[:, idx].astype(np.float64), self.y, self.item, self.step)

    def per_item(self, scores: np.ndarray) -> list[list[float]]:
        return scores_by_item(scores, self.item, range(len(self.labels)))


def evaluate(train: Table, ev: Table, label: str, names: list[str], model: str = "logistic", pca: int = 0,
             erase: bool = True) -> None:
    reduce = ReduceConfig(pca, erase=erase) if pca else None
    extracted = reduced_feature_names(names, reduce) if reduce else names
    tr_all, ev_all = train.features(extracted), ev.features(extracted)
    fit_part, val_part, va_items = split_features(tr_all, len(train.labels), 0.2, 0)
    config = FitConfig(model=model, l2=1e-2, hidden=16, epochs=600, patience=60)
    if reduce:
        n_other = len(names) - 1  # names start with "hidden"
        layers, mean, scale = _fit_reduced(fit_part, val_part, config, reduce, train.hidden_size, n_other)
        ev_x = ev_all.x[:, : train.hidden_size + n_other]
    else:
        layers, mean, scale = fit_head(fit_part, val_part, config)
        ev_x = ev_all.x

    head = Head("", train.hidden_size, layers=layers, mean=mean, scale=scale)
    fold_calibration(head, val_part)
    p_val, p_ev = head.predict(val_part.x), head.predict(ev_x)
    val_scores = scores_by_item(p_val, val_part.item, va_items)
    val_threshold = best_threshold(val_scores, [train.labels[i] for i in va_items]).threshold
    scores = ev.per_item(p_ev)
    folds = []
    for calib, test in ((0, 1), (1, 0)):  # even items calibrate odd ones and back
        t = best_threshold(scores[calib::2], ev.labels[calib::2]).threshold
        folds.append(processbench_f1(scores[test::2], ev.labels[test::2], t).f1)
    good = ev.y == 1
    r_len = np.corrcoef(p_ev[good], ev.features(["log_tokens"]).x[good, 0])[0, 1]
    print(f"{label:48s} AUROC {step_auroc(scores, ev.labels):.3f}  "
          f"F1 oracle {100 * best_threshold(scores, ev.labels).f1:5.1f}  "
          f"F1 cal(train) {100 * processbench_f1(scores, ev.labels, val_threshold).f1:5.1f}  "
          f"F1 cal(other half) {100 * np.mean(folds):5.1f}  r(score, length) {r_len:+.2f}", flush=True)


def fit(train_path: str, eval_path: str) -> None:
    train, ev = Table(train_path), Table(eval_path)
    safe = list(SEARCH_SAFE_FEATURES)
    evaluate(train, ev, "log-probs + digit + arith (shipped kind)", safe)
    evaluate(train, ev, "the same, MLP 16", safe, model="mlp")
    for k in (16, 32, 48, 64):
        evaluate(train, ev, f"+ hidden, erased, PCA {k}", ["hidden"] + safe, pca=k)
    evaluate(train, ev, "+ hidden, erased, PCA 32, MLP 16", ["hidden"] + safe, model="mlp", pca=32)
    evaluate(train, ev, "+ hidden, PCA 32, not erased (not search-safe)", ["hidden"] + safe, pca=32, erase=False)
    evaluate(train, ev, "+ length and number count (not search-safe)", safe + ["log_tokens", "log_digit_tokens"])


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "extract":
        extract(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    elif len(sys.argv) == 4 and sys.argv[1] == "fit":
        fit(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)

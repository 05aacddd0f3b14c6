"""``specsearch prm train``: fit a learned PRM head on a GGUF backbone's hidden states."""

from __future__ import annotations

import argparse
from pathlib import Path


from specsearch.core.engine import Engine, LoadOptions
from specsearch.core.errors import SpecSearchError
from specsearch.core.options import Bounds
from specsearch.core.prm_head import FEATURES, SEARCH_SAFE_FEATURES
from specsearch.core.prm_train import FitConfig, ReduceConfig, extract_features, reduced_feature_names, train_head
from specsearch.core.processbench import load_process_set

from .common import check_flags, item_progress, print_json


def register_train(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "train",
        help="train a learned PRM head (--prm-kind head) on ProcessBench-format data",
        description="Reads the backbone's hidden state at the end of every step of the given solutions "
        "(the prompt a drafter sees in a search), fits a logistic-regression or MLP head in numpy with "
        "a held-out split and early stopping, calibrates it on the held-out items, and writes a head "
        "file recording the backbone's SHA-256. Prints held-out AUROC and F1.",
    )
    p.add_argument("--backbone", required=True, metavar="FILE.gguf", help="the model whose hidden states the head reads")
    p.add_argument("--data", required=True, action="append", metavar="FILE.json|gsm8k|processbench:SPLIT",
                   help="ProcessBench-format items (repeat for several files)")
    p.add_argument("--out", required=True, type=Path, metavar="HEAD.npz", help="where to write the head")
    p.add_argument("--model", choices=("logistic", "mlp"), default="logistic", help="head model (default logistic)")
    p.add_argument("--features", default=",".join(SEARCH_SAFE_FEATURES),
                   help=f"comma-separated, from {', '.join(FEATURES)} (default: the shipped head's, "
                   "which leave out step length and counts: they make a search prefer steps that compute nothing)")
    p.add_argument("--pca", type=int, default=0, metavar="K",
                   help="read the hidden state through its top K principal directions, fitted on the training "
                   "items (needs the hidden feature; 0 = all of it). The head file stays a head over the raw "
                   "hidden state, with the reduction folded in")
    p.add_argument("--keep-length", action="store_true",
                   help="with --pca: do not erase from the hidden state the directions that predict the step's "
                   "length and count of numbers (erased by default: they make a search prefer steps that "
                   "compute nothing)")
    p.add_argument("--l2", type=float, default=FitConfig.l2, help=f"L2 penalty (default {FitConfig.l2})")
    p.add_argument("--hidden", type=int, default=FitConfig.hidden, help="MLP hidden units")
    p.add_argument("--epochs", type=int, default=FitConfig.epochs, help=f"most training epochs (default {FitConfig.epochs})")
    p.add_argument("--patience", type=int, default=FitConfig.patience,
                   help=f"stop after this many epochs without a better held-out AUROC (default {FitConfig.patience})")
    p.add_argument("--held-out", type=float, default=0.2, help="fraction of items held out (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=run_train)


# The fit's numbers, checked before the (slow) feature extraction starts.
TRAIN_BOUNDS = {
    "l2": Bounds(0.0),
    "hidden": Bounds(1, 1 << 16, kind=int),
    "epochs": Bounds(1, 1 << 20, kind=int),
    "patience": Bounds(1, 1 << 20, kind=int),
    "seed": Bounds(0, 2**32 - 1, kind=int),  # numpy's seeds are unsigned
    "pca": Bounds(0, 1 << 16, kind=int),
}


def parse_features(text: str) -> list[str]:
    """A --features list, checked against the features a head can read."""
    features = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in features if f not in FEATURES]
    if unknown or not features:
        raise SpecSearchError(f"unknown features {unknown}; choose from {', '.join(FEATURES)}")
    return features


def run_train(args: argparse.Namespace) -> int:
    check_flags(args, TRAIN_BOUNDS)
    options = LoadOptions(n_threads=args.threads)
    features = parse_features(args.features)
    reduce = None
    if args.pca:
        if "hidden" not in features:
            raise SpecSearchError("--pca reduces the hidden state: add hidden to --features")
        reduce = ReduceConfig(args.pca, erase=not args.keep_length)
    elif args.keep_length:
        raise SpecSearchError("--keep-length goes with --pca")
    if not 0.0 < args.held_out < 1.0:
        raise SpecSearchError("--held-out must lie strictly between 0 and 1")
    items = [it for spec in args.data for it in load_process_set(spec).items]
    if len(items) < 4 or len({it.label >= 0 for it in items}) < 2:
        raise SpecSearchError("training needs at least 4 items, some with an error and some without")
    engine = Engine(args.backbone, options)
    if reduce is not None and args.pca > engine.facts.n_embd:
        engine.close()
        raise SpecSearchError(f"--pca {args.pca} is more than the backbone's hidden size ({engine.facts.n_embd})")
    with engine, item_progress("features", len(items)) as on_progress:
        extracted = reduced_feature_names(features, reduce) if reduce else features
        feats = extract_features(engine, items, extracted, on_progress=on_progress)
        config = FitConfig(model=args.model, hidden=args.hidden, l2=args.l2, seed=args.seed, epochs=args.epochs,
                           patience=args.patience)
        meta = {"trained_on": [str(d) for d in args.data], "model": args.model, "l2": args.l2}
        if reduce is not None and len(feats.y) < args.pca:
            raise SpecSearchError(f"--pca {args.pca} is more than the {len(feats.y)} steps of the data")
        report = train_head(engine, feats, items, features, config, held_out=args.held_out, meta=meta,
                            reduce=reduce)
    report.head.meta.update({"val_auroc": report.val_auroc, "val_f1_oracle": report.val_f1})
    report.head.save(args.out)
    summary = {
        "out": str(args.out), "backbone": Path(args.backbone).name, "items": len(items),
        "train_steps": report.train_steps, "val_steps": report.val_steps, "val_auroc": report.val_auroc,
        "val_f1_oracle": report.val_f1, "val_threshold": report.val_threshold, "features": features,
        "model": args.model, "pca": args.pca, "erased": bool(reduce and reduce.erase),
    }
    if args.json:
        print_json(summary)
    else:
        auroc = f"{report.val_auroc:.3f}" if report.val_auroc is not None else "n/a"
        f1 = f"{100 * report.val_f1:.1f}" if report.val_f1 is not None else "n/a"
        print(f"wrote {args.out}: {args.model} head on {Path(args.backbone).name}, {len(items)} items "
              f"({report.train_steps} training / {report.val_steps} held-out steps)")
        print(f"held out: AUROC {auroc}, F1 {f1} (threshold chosen on the held-out items themselves)")
    return 0

"""``specsearch prm distill``: a head on the drafter that predicts a teacher head's scores."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from specsearch.core.engine import Engine, LoadOptions
from specsearch.core.errors import SpecSearchError
from specsearch.core.options import Bounds
from specsearch.core.prm_distill import distill_head, teacher_scores
from specsearch.core.prm_head import FEATURES, SEARCH_SAFE_FEATURES, Head, check_head_fits
from specsearch.core.prm_train import extract_features
from specsearch.core.processbench import load_process_set

from .common import check_flags, item_progress, print_json
from .prm_train_cmd import parse_features

DEFAULT_FEATURES = ("hidden", *SEARCH_SAFE_FEATURES)
DEFAULT_L2 = 2.0


def register_distill(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "distill",
        help="train a head on the drafter to predict another head's scores (a judge on the large model, for free)",
        description="Scores every step of the given solutions with a teacher head (e.g. one on the large model), "
        "then fits a head on the student backbone (the drafter) that predicts the teacher's score from the "
        "student's own hidden state and log-probs, by ridge regression on the teacher's logit. In a search the "
        "student scores the drafter's thoughts from what the drafter computed while writing them. Labels are not "
        "needed (solutions the drafter wrote itself are the best data: give unlabelled ones label -1; a labelled "
        "item's steps after its first error are left out, as everywhere); where items are labelled, the held-out "
        "AUROC of student and teacher is printed.",
    )
    p.add_argument("--backbone", required=True, metavar="S.gguf", help="the student's model (the drafter)")
    p.add_argument("--teacher", required=True, metavar="L.gguf", help="the teacher head's backbone")
    p.add_argument("--teacher-head", required=True, metavar="HEAD.npz", help="the teacher head (made for --teacher)")
    p.add_argument("--data", required=True, action="append", metavar="FILE.json|gsm8k|processbench:SPLIT",
                   help="ProcessBench-format items whose steps are scored (repeat for several files)")
    p.add_argument("--out", required=True, type=Path, metavar="HEAD.npz", help="where to write the student head")
    p.add_argument("--features", default=",".join(DEFAULT_FEATURES),
                   help=f"the student's features, comma-separated, from {', '.join(FEATURES)} "
                   "(default: the hidden state and the shipped head's log-prob features)")
    p.add_argument("--l2", type=float, default=DEFAULT_L2,
                   help=f"ridge penalty per training step, on standardised features (default {DEFAULT_L2:g})")
    p.add_argument("--held-out", type=float, default=0.2, help="fraction of items held out for the report (default 0.2; 0: fit on every item, no report)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=run_distill)


DISTILL_BOUNDS = {"l2": Bounds(0.0), "seed": Bounds(0, 2**32 - 1, kind=int)}


def run_distill(args: argparse.Namespace) -> int:
    check_flags(args, DISTILL_BOUNDS)
    features = parse_features(args.features)
    if not 0.0 <= args.held_out < 1.0:
        raise SpecSearchError("--held-out must be at least 0 and below 1")
    head = Head.load(args.teacher_head)
    items = [it for spec in args.data for it in load_process_set(spec).items]
    if len(items) < 2:
        raise SpecSearchError("distilling needs at least 2 items (one is held out)")
    options = LoadOptions(n_threads=args.threads)
    with Engine(args.teacher, options) as teacher:
        check_head_fits(teacher, head)  # a head made for another backbone: a one-line error, before any work
        with item_progress("teacher", len(items)) as on_progress:
            targets = teacher_scores(teacher, head, items, on_progress=on_progress)
    with Engine(args.backbone, options) as student:
        with item_progress("student", len(items)) as on_progress:
            rows = extract_features(student, items, features, meta=head.meta, on_progress=on_progress)
        meta = {**{k: v for k, v in head.meta.items() if k in ("system_prompt", "delimiter")},
                "distilled_from": {"backbone": Path(args.teacher).name, "head": Path(args.teacher_head).name},
                "trained_on": [str(d) for d in args.data], "l2": args.l2}
        report = distill_head(student, rows, features, targets, items, args.l2, args.held_out, args.seed, meta)
    if report.val_steps:
        report.head.meta.update({"val_correlation": report.val_correlation, "val_auroc": report.val_auroc})
    report.head.save(args.out)
    summary = {
        "out": str(args.out), "backbone": Path(args.backbone).name, "teacher": Path(args.teacher).name,
        "items": len(items), "train_steps": report.train_steps, "val_steps": report.val_steps,
        "val_correlation": None if math.isnan(report.val_correlation) else report.val_correlation,
        "val_auroc": report.val_auroc,
        "teacher_val_auroc": report.teacher_val_auroc, "features": features, "l2": args.l2,
    }
    if args.json:
        print_json(summary)
    else:
        def fmt(v: float | None) -> str:
            return "n/a" if v is None or math.isnan(v) else f"{v:.3f}"
        print(f"wrote {args.out}: head on {Path(args.backbone).name} distilled from {Path(args.teacher_head).name} "
              f"on {Path(args.teacher).name}, {len(items)} items ({report.train_steps} training / "
              f"{report.val_steps} held-out steps)")
        if report.val_steps:
            print(f"held out: correlation with the teacher {fmt(report.val_correlation)}; AUROC student "
                  f"{fmt(report.val_auroc)}, teacher {fmt(report.teacher_val_auroc)}")
    return 0

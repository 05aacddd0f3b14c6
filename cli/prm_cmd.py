"""``specsearch prm``: reward-model tools, one function per subcommand (``prm eval``)."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm  # already a dependency of huggingface-hub

from specsearch.core.api import Solver
from specsearch.core.atomic import atomic_write_bytes
from specsearch.core.engine import LOAD_BOUNDS
from specsearch.core.errors import SpecSearchError
from specsearch.core.options import Bounds
from specsearch.core.processbench import (
    HUB_SPLITS,
    PACKAGED,
    PRMEvaluation,
    balanced_sample,
    calibration_sample,
    evaluate_prm,
    load_process_set,
)
from specsearch.core.prm import DEFAULT_PRM_KIND, PRM_KINDS, RewardModel, prm_kind_names
from specsearch.models.resolve import LoadOverrides, resolve_models

from .common import check_flags, check_head, print_json
from .prm_convert_cmd import register_convert
from .prm_distill_cmd import register_distill
from .prm_train_cmd import register_train

DEFAULT_CALIBRATION = "gsm8k"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prm",
        help="reward-model tools: `prm eval` measures a PRM on ProcessBench",
        description="Tools for process reward models. `specsearch prm eval --prm P.gguf --data gsm8k` "
        "measures how well a reward model finds the first wrong step of ProcessBench solutions.",
    )
    commands = p.add_subparsers(dest="prm_command", metavar="SUBCOMMAND")
    commands.required = True
    register_eval(commands)
    register_train(commands)
    register_distill(commands)
    register_convert(commands)


# ---------------------------------------------------------------- prm eval ---
def register_eval(commands: argparse._SubParsersAction) -> None:
    splits = "|".join(HUB_SPLITS)
    p = commands.add_parser(
        "eval",
        help="AUROC and ProcessBench F1 of a reward model on ProcessBench data",
        description="Scores every step of ProcessBench solutions with the reward model and reports: "
        "AUROC of good steps (before the first error, and all steps of correct solutions) against "
        "first wrong steps; ProcessBench F1 (harmonic mean of the accuracy on erroneous and on correct "
        "solutions, a step being wrong when it scores below a threshold chosen on --calibrate); the "
        "oracle F1 (best threshold on the evaluated data, for reference); steps scored per second "
        "and the score range.",
    )
    p.add_argument("--prm", metavar="P.gguf",
                   help="reward model: a GGUF path or a `specsearch models list` name "
                   "(default: the model manager's PRM, else its small model as judge)")
    p.add_argument("--prm-kind", choices=prm_kind_names(), default=DEFAULT_PRM_KIND,
                   help="; ".join(f"{k.name}: {k.description}" for k in PRM_KINDS.values()))
    p.add_argument("--head", metavar="FILE", help="head file for PRM kinds that use one")
    p.add_argument("--no-arith-check", action="store_true",
                   help="score with the model alone, without the exact arithmetic check on top")
    p.add_argument("--data", required=True, metavar="FILE.json|gsm8k|processbench:SPLIT",
                   help=f"ProcessBench items: a JSON file, a packaged set ({', '.join(PACKAGED)}) "
                   f"or processbench:{splits} from the Hugging Face Hub (cached)")
    p.add_argument("--n", type=int, default=None, metavar="N",
                   help="a deterministic balanced sample: N/2 items with an error, N/2 correct (default: all)")
    p.add_argument("--calibrate", metavar="FILE|gsm8k", default=None,
                   help="ProcessBench items to choose the F1 threshold on (default: the packaged gsm8k set)")
    p.add_argument("--calibrate-n", type=int, default=None, metavar="N",
                   help="calibration items, balanced (default: --n; all when --n is not given)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--plot", metavar="OUT.png", type=Path, default=None,
                   help="also write a histogram of good vs first-wrong step scores")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")
    p.add_argument("--n-ctx", type=int, default=None, metavar="N", help="context tokens (default: automatic)")
    p.set_defaults(func=run_eval)


def _solver(args: argparse.Namespace) -> tuple[Solver, str]:
    """The Solver holding only the reward model, and the model file's name ("-" for none)."""
    needs_model = PRM_KINDS[args.prm_kind].needs_model
    spec = None
    if needs_model or args.prm:  # a kind without a model skips the manager's default models
        given = LoadOverrides(n_ctx=args.n_ctx, n_threads=args.threads)
        resolved = resolve_models({"prm": args.prm}, {role: given for role in ("small", "large", "prm")})
        if resolved.problems:
            raise SpecSearchError(" ".join(resolved.problems))
        spec = resolved.specs["prm"]
    if spec is None and needs_model:
        raise SpecSearchError("no reward model: pass --prm P.gguf (a path or a `specsearch models list` name)")
    solver = Solver(prm=spec, prm_kind=args.prm_kind, prm_head=args.head, arith_check=not args.no_arith_check)
    return solver, Path(spec.path).name if spec else "-"


def _reward_model(solver: Solver, args: argparse.Namespace) -> RewardModel:
    try:
        prm = solver.reward_model()  # kinds that need no model are built without one
    except (ValueError, OSError) as exc:  # e.g. a kind the model cannot serve, an unreadable head file
        raise SpecSearchError(f"cannot build the {args.prm_kind} reward model: {exc}") from exc
    return prm


def _progress_bars() -> tuple[Callable[[str, int, int], None], dict[str, tqdm]]:
    """A progress callback drawing one bar per phase on stderr, and the bars (to close)."""
    bars: dict[str, tqdm] = {}

    def on_progress(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            bar = bars[phase] = tqdm(total=total, desc=phase, unit="step", file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()  # before the next phase's bar opens

    return on_progress, bars


_COUNT = Bounds(1, kind=int, optional=True)
EVAL_BOUNDS = {"n": _COUNT, "calibrate_n": _COUNT, "threads": LOAD_BOUNDS["n_threads"], "n_ctx": LOAD_BOUNDS["n_ctx"]}
"""prm eval's numbers, checked before any data or model is read (None: the default)."""


def run_eval(args: argparse.Namespace) -> int:
    check_flags(args, EVAL_BOUNDS)
    check_head(args)
    data = load_process_set(args.data)
    items = balanced_sample(data.items, args.n)
    calibration_set = load_process_set(args.calibrate or DEFAULT_CALIBRATION)
    cal_items, note = calibration_sample(calibration_set, args.calibrate_n or args.n, items, data.key)
    solver, prm_name = _solver(args)
    on_progress, bars = _progress_bars()
    with solver:
        prm = _reward_model(solver, args)
        try:
            result = evaluate_prm(prm, items, cal_items, on_progress)
        finally:
            for bar in bars.values():
                bar.close()

    default = "" if args.calibrate else " (default; choose with --calibrate)"
    calibration = f"{calibration_set.description}{default}, {len(cal_items)} items" + (f"; {note}" if note else "")
    described = solver.prm_description()  # what kind auto chose, and which head
    report = {
        **result.to_dict(),
        "prm": prm_name,
        "prm_kind": described["kind"],
        "head": described["head"],
        "arith_check": described["arith_check"],
        "data": data.description,
        "calibration": calibration,
    }
    if args.plot:
        model = f"{prm_name} ({described['kind']})" if prm_name != "-" else described["kind"]
        write_histogram(result, args.plot, f"{model} on {data.description}")
        report["plot"] = str(args.plot)
    if args.json:
        print_json(report)
    else:
        print(format_report(report))
    return 0


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_report(r: dict[str, Any]) -> str:
    """The text summary of ``prm eval``."""
    check = "on" if r["arith_check"] else "off"
    lines = [
        f"reward model      {r['prm']} (kind {r['prm_kind']}, arithmetic check {check})",
        f"data              {r['data']}: {r['items']} items ({r['items_erroneous']} with an error, "
        f"{r['items_correct']} correct), {r['steps']} steps scored",
        f"AUROC             {_num(r['auroc'])}  ({r['steps_good']} good vs {r['steps_first_wrong']} "
        "first-wrong steps; steps after the first error left out)",
        f"ProcessBench F1   {_num(r['f1'])}  at threshold {_num(r['threshold'])}  (accuracy: erroneous "
        f"{_num(r['accuracy_erroneous'])}, correct {_num(r['accuracy_correct'])})",
        f"  calibrated on   {r['calibration']}",
        f"oracle F1         {_num(r['f1_oracle'])}  at threshold {_num(r['threshold_oracle'])}  "
        "(best threshold on the evaluated data; for reference only)",
        f"speed             {r['steps_per_second']:.2f} steps/s ({r['steps']} steps in {r['seconds']:.1f} s)",
        f"score range       {_num(r['score_min'])} .. {_num(r['score_max'])}",
    ]
    if r.get("plot"):
        lines.append(f"histogram         {r['plot']}")
    return "\n".join(lines)


def write_histogram(result: PRMEvaluation, path: Path, title: str) -> None:
    """PNG histogram of good vs first-wrong step scores, with both thresholds marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg canvas: no display needed
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    bins = [i / 40 for i in range(41)]
    ax.hist(result.good_scores, bins=bins, alpha=0.6, density=True,
            label=f"good steps ({result.good_scores.size})")
    ax.hist(result.first_wrong_scores, bins=bins, alpha=0.6, density=True,
            label=f"first wrong steps ({result.first_wrong_scores.size})")
    ax.axvline(result.calibrated.threshold, color="black", linestyle="--", label="calibrated threshold")
    ax.axvline(result.oracle.threshold, color="grey", linestyle=":", label="oracle threshold")
    ax.set_xlabel("step score")
    ax.set_ylabel("density")
    auroc = "n/a" if result.auroc is None else f"{result.auroc:.3f}"
    ax.set_title(f"{title}\nAUROC {auroc}", fontsize="small")
    ax.legend(fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        raise SpecSearchError(f"cannot write {path}: {exc.strerror or exc}") from exc

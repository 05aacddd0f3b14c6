"""``specsearch bench``: methods on a dataset (default), or ``bench engine``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm  # already a dependency of huggingface-hub

from specsearch.core.bench import format_table, run_benchmark
from specsearch.core.bench_variants import expand_sweep, parse_variant
from specsearch.core.datasets import load_dataset
from specsearch.core.methods import method_names

from .common import load_options, print_json
from .search_args import add_model_args, add_search_args, make_solver, search_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark methods on a dataset, or the engine itself (`bench engine`)",
        description="`specsearch bench --dataset gsm8k --methods ar,sps,specsearch --out DIR` runs each "
        "method on the same problems with the same seeds, appending results to DIR/results.jsonl as it "
        "goes (re-running resumes), then prints accuracy, latency, speed-up vs ar (also per token of the "
        "thoughts kept: equal work), the cost model's predicted speed-up and ceiling, and acceptance rates, "
        "and writes summary.json, results.csv and plot.png. A method may carry one search option of its "
        "own (`specsearch@threshold_margin=0.01`); `--sweep threshold_margin=0,0.01,0.02` runs specsearch "
        "at each value, shares the ar runs, and draws curve.png (accuracy and speed-up against thought "
        "acceptance). `specsearch bench engine --small S --large L` "
        "measures decode throughput, speculative decoding and scoring side by side.",
    )
    p.add_argument("what", nargs="?", choices=("search", "engine"), default="search",
                   help="search (default): methods on a dataset; engine: engine throughput")
    p.add_argument("--dataset", default="gsm8k", help="gsm8k, math500 or a JSONL file with question/answer (default gsm8k)")
    p.add_argument("--n", type=int, default=50, help="number of problems (default 50)")
    p.add_argument("--methods", default="ar,sps,specsearch", type=method_list,
                   help="comma-separated, from " + ",".join(method_names())
                   + "; METHOD@FIELD=VALUE runs a method with one search option changed")
    p.add_argument("--sweep", metavar="FIELD=V1,V2,...", type=sweep_list, default=[],
                   help="add specsearch at each value of a search option, e.g. threshold_margin=0,0.01,0.02 "
                   "(curve.png shows accuracy and speed-up against acceptance)")
    p.add_argument("--out", default="bench-out", help="output folder (default ./bench-out)")
    p.add_argument("--prompts", help="bench engine: JSONL with question fields (default: packaged GSM8K)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_model_args(p)
    add_search_args(p, methods_flag=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_engine(args) if args.what == "engine" else run_search(args)


def method_list(text: str) -> list[str]:
    """--methods: comma-separated registered method names, each optionally METHOD@FIELD=VALUE."""
    try:
        variants = [parse_variant(m) for m in text.split(",") if m.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    unknown = [v.method for v in variants if v.method not in method_names()]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {', '.join(unknown)}; "
                                         f"choose from {', '.join(method_names())}")
    return [v.label for v in variants]


def sweep_list(text: str) -> list[str]:
    """--sweep FIELD=V1,V2: the specsearch variant labels."""
    try:
        return expand_sweep(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_search(args: argparse.Namespace) -> int:
    methods = list(dict.fromkeys(args.methods + args.sweep))
    configs = {m: (v := parse_variant(m)).apply(search_config(args, v.method)) for m in methods}
    problems = load_dataset(args.dataset, args.n)
    solver = make_solver(args)
    bar = tqdm(total=len(problems) * len(methods), unit="run", file=sys.stderr, dynamic_ncols=True)
    correct: dict[str, int] = {m: 0 for m in methods}
    seen: dict[str, int] = {m: 0 for m in methods}

    def on_progress(p) -> None:
        seen[p.method] += 1
        correct[p.method] += p.correct
        bar.set_postfix_str(" ".join(f"{m}:{correct[m]}/{seen[m]}" for m in methods))
        bar.update(1)

    def solve(problem, method: str):
        solver.drop_cached_tokens()  # every run reads its question cold, as the first method's did
        return solver.solve(problem.question, configs[method])

    with solver:
        summary = run_benchmark(problems, methods, solve, Path(args.out), on_progress, prm=solver.prm_description())
    bar.close()
    if args.json:
        print_json({m: s.to_dict() for m, s in summary.methods.items()})  # each names its "prm"
    else:
        print(format_table(summary))
        files = "summary.json, results.csv, plot.png" + (", curve.png" if summary.curve_path else "")
        print(f"\nresults in {Path(args.out).resolve()} ({files})")
    return 0


def run_engine(args: argparse.Namespace) -> int:
    from specsearch.core.bench_engine import format_engine_table, run_engine_bench
    from specsearch.core.engine import Engine
    from specsearch.core.errors import SpecSearchError

    if not (args.small and args.large):
        raise SpecSearchError("bench engine needs --small and --large")
    from specsearch.core.remote_client import is_url

    if is_url(args.small) or is_url(args.large):
        raise SpecSearchError("bench engine measures local GGUF files; benchmark a served model with `bench search`")
    options = load_options(args)
    problems = load_dataset(args.prompts or "gsm8k", 20)
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    with Engine(args.small, options) as small, Engine(args.large, options) as large:
        prompts = [large.chat_tokens([{"role": "user", "content": p.question}]) for p in problems]
        result = run_engine_bench(small, large, prompts, log=log)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n" + format_engine_table(result))
    return 0

"""Model and search options shared by ``solve`` and ``bench``."""

from __future__ import annotations

import argparse
from pathlib import Path

from specsearch.core.api import Solver
from specsearch.core.config import METHODS, SearchConfig, threshold_fields
from specsearch.core.errors import SpecSearchError
from specsearch.core.prm import DEFAULT_PRM_KIND, PRM_KINDS, prm_kind_names
from specsearch.models.resolve import LoadOverrides, resolve_models

DEFAULTS = SearchConfig(method="specsearch")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("models (default: the model manager's defaults, see `specsearch models list`)")
    g.add_argument("--small", metavar="S.gguf", help="small (draft) model: a GGUF path or a `specsearch models list` name")
    g.add_argument("--large", metavar="L.gguf", help="large (target) model: a path or a model name")
    g.add_argument("--prm", metavar="P.gguf", help="reward model: a path or a model name (default: the manager's PRM, else the small model as judge)")
    g.add_argument("--prm-kind", choices=prm_kind_names(), default=DEFAULT_PRM_KIND,
                   help="; ".join(f"{k.name}: {k.description}" for k in PRM_KINDS.values()).replace("%", "%%"))
    g.add_argument("--head", metavar="FILE", default=None,
                   help="head file (.npz) for --prm-kind head (default: the head shipped for the --prm model)")
    g.add_argument("--no-arith-check", action="store_true",
                   help="score steps with the reward model alone, without the exact arithmetic check on top")
    g.add_argument("--n-gpu-layers", type=int, default=None, metavar="N", help="GPU layers per model (default: the model's `specsearch models set` value, else all if a GPU backend exists)")
    g.add_argument("--n-ctx", type=int, default=None, metavar="N", help="context tokens per model (default: automatic)")
    g.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")


def add_search_args(parser: argparse.ArgumentParser, methods_flag: bool = True) -> None:
    g = parser.add_argument_group("search")
    if methods_flag:
        g.add_argument("--method", choices=METHODS, default="specsearch",
                       help="specsearch (default), ar (large only), sps (large + token-level drafting), small (small only)")
    g.add_argument("--beam", type=int, default=DEFAULTS.beam_width, metavar="B", help=f"beams kept per step (default {DEFAULTS.beam_width})")
    g.add_argument("--children", type=int, default=DEFAULTS.children, metavar="N", help=f"thoughts per beam per step (default {DEFAULTS.children})")
    g.add_argument("--depth", type=int, default=DEFAULTS.max_depth, metavar="D", help=f"most steps (default {DEFAULTS.max_depth})")
    g.add_argument("--step-tokens", type=int, default=DEFAULTS.max_step_tokens, metavar="T", help=f"token budget per step (default {DEFAULTS.max_step_tokens})")
    g.add_argument("--temperature", type=float, default=DEFAULTS.temperature, help=f"default {DEFAULTS.temperature}")
    g.add_argument("--seed", type=int, default=0, help="default 0")
    g.add_argument("--theta", type=float, default=DEFAULTS.theta, help=f"threshold EMA weight θ (default {DEFAULTS.theta})")
    g.add_argument("--threshold-stat", choices=("mean", "max", "quantile"), default=DEFAULTS.threshold_stat,
                   help="Θ: statistic of the large model's step scores (default mean)")
    g.add_argument("--quantile", type=float, default=DEFAULTS.threshold_quantile, help="q for --threshold-stat quantile")
    g.add_argument("--fixed-beta", type=float, default=None, metavar="β",
                   help="use a constant threshold instead of the adaptive one")
    g.add_argument("--threshold-margin", type=float, default=DEFAULTS.threshold_margin, metavar="M",
                   help="added to β before drafts are judged: a margin keeps fewer drafts, trading speed for "
                   f"quality when the judge is weak (default {DEFAULTS.threshold_margin})")
    g.add_argument("--aggregation", choices=("last", "min", "prod"), default=DEFAULTS.aggregation,
                   help="how step scores combine into a path score (default last)")
    g.add_argument("--vote", action="store_true", help="answer by PRM-weighted majority vote over finished leaves")


def search_config(args: argparse.Namespace, method: str | None = None) -> SearchConfig:
    return SearchConfig(
        method=method or args.method,
        beam_width=args.beam,
        children=args.children,
        max_depth=args.depth,
        max_step_tokens=args.step_tokens,
        temperature=args.temperature,
        seed=args.seed,
        theta=args.theta,
        threshold_stat=args.threshold_stat,
        threshold_quantile=args.quantile,
        **threshold_fields(args.fixed_beta),
        threshold_margin=args.threshold_margin,
        aggregation=args.aggregation,
        answer_selection="weighted_vote" if args.vote else "best",
    )


def make_solver(args: argparse.Namespace) -> Solver:
    if args.head is not None and args.prm_kind not in ("head", "auto"):
        raise SpecSearchError(f"--head FILE is for --prm-kind head (or auto), not --prm-kind {args.prm_kind}")
    if args.head is not None and not Path(args.head).expanduser().is_file():
        raise SpecSearchError(f"head file {args.head} does not exist")
    choices = {role: getattr(args, role) for role in ("small", "large", "prm")}
    given = LoadOverrides(args.n_gpu_layers, args.n_ctx, args.threads)
    resolved = resolve_models(choices, {role: given for role in choices})
    if resolved.problems:
        raise SpecSearchError(" ".join(resolved.problems))
    specs = resolved.specs
    if specs["small"] is None and specs["large"] is None:
        raise SpecSearchError(
            "no models given: pass --small/--large/--prm, or set defaults with `specsearch models set-default`"
        )
    return Solver(specs["small"], specs["large"], specs["prm"], prm_kind=args.prm_kind,
                  prm_head=Path(args.head).expanduser() if args.head else None, arith_check=not args.no_arith_check)

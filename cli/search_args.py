"""Model and search options shared by ``solve`` and ``bench``.

The search flags are derived from SearchConfig's fields (core.config.search_options):
a new field is a new flag, with its docstring as help."""

from __future__ import annotations

import argparse
from pathlib import Path

from specsearch.core.api import Solver
from specsearch.core.config import SearchConfig, implied_options, search_options
from specsearch.core.errors import SpecSearchError
from specsearch.core.prm import DEFAULT_PRM_KIND, PRM_KINDS, prm_kind_names
from specsearch.core.options import argparse_options
from specsearch.models.resolve import LoadOverrides, resolve_models

from .common import check_head, load_options, warn_gpu_layers


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
    """One flag per SearchConfig field (--field-name, plus its short name such as --beam),
    typed, with the field's choices, default and docstring.  ``methods_flag`` False leaves
    out --method, for bench, which takes a list (--methods)."""
    g = parser.add_argument_group("search (defaults from SearchConfig)")
    for option in search_options():
        if option.name == "method" and not methods_flag:
            continue
        g.add_argument(*option.flags, **argparse_options(option, f"(default {option.default!r})"))
    # Kept from before the flags were derived from SearchConfig (--fixed-beta alone
    # also still means a fixed threshold: core.config.implied_options).
    g.add_argument("--vote", dest="answer_selection", action="store_const", const="weighted_vote",
                   help="same as --answer-selection weighted_vote: answer by PRM-weighted majority vote")


def search_config(args: argparse.Namespace, method: str | None = None) -> SearchConfig:
    """The SearchConfig of the given flags (``method`` overrides --method); the rest keep its defaults."""
    given = {o.name: getattr(args, o.name) for o in search_options() if getattr(args, o.name, None) is not None}
    if method is not None:
        given["method"] = method
    return SearchConfig(**implied_options(given))  # a refused value: cli.main's one-line error


def make_solver(args: argparse.Namespace) -> Solver:
    check_head(args)
    load_options(args, warn=False)  # a bad number is refused here, before any file is read
    choices = {role: getattr(args, role) for role in ("small", "large", "prm")}
    given = LoadOverrides(args.n_gpu_layers, args.n_ctx, args.threads)
    resolved = resolve_models(choices, {role: given for role in choices})
    if resolved.problems:
        raise SpecSearchError(" ".join(resolved.problems))
    specs = resolved.specs
    # the flag or the model manager's per-model setting: either may ask for GPU layers
    warn_gpu_layers({role: spec.n_gpu_layers for role, spec in specs.items() if spec is not None})
    if specs["small"] is None and specs["large"] is None:
        raise SpecSearchError(
            "no models given: pass --small/--large/--prm, or set defaults with `specsearch models set-default`"
        )
    return Solver(specs["small"], specs["large"], specs["prm"], prm_kind=args.prm_kind,
                  prm_head=Path(args.head).expanduser() if args.head else None, arith_check=not args.no_arith_check)

"""Model and search options shared by ``solve`` and ``bench``.

The search flags are derived from SearchConfig's fields (core.config.search_options):
a new field is a new flag, with its docstring as help."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from specsearch.core.api import Solver
from specsearch.core.config import SearchConfig, implied_options, search_options
from specsearch.core.errors import SpecSearchError
from specsearch.core.offload import gpu_layers_asked
from specsearch.core.options import argparse_options
from specsearch.core.prm import DEFAULT_PRM_KIND, PRM_KINDS, prm_kind_names
from specsearch.core.remote_client import DEFAULT_API_KEY_ENV, DEFAULT_TIMEOUT, ServedModel
from specsearch.models.resolve import LoadOverrides, resolve_models

from .common import check_head, load_options, warn_gpu_layers


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("models (default: the model manager's defaults, see `specsearch models list`)")
    g.add_argument("--small", metavar="S.gguf", help="small (draft) model: a GGUF path or a `specsearch models list` name")
    g.add_argument("--large", metavar="L.gguf", help="large (target) model: a path, a model name, or the http(s) URL of an OpenAI-compatible completions server")
    g.add_argument("--prm", metavar="P.gguf", help="reward model: a path, a model name or a server URL (default: the manager's PRM, else the small model as judge)")
    g.add_argument("--prm-kind", choices=prm_kind_names(), default=DEFAULT_PRM_KIND,
                   help="; ".join(f"{k.name}: {k.description}" for k in PRM_KINDS.values()).replace("%", "%%"))
    g.add_argument("--head", metavar="FILE", default=None,
                   help="head file (.npz) for --prm-kind head (default: the head shipped for the --prm model)")
    g.add_argument("--no-arith-check", action="store_true",
                   help="score steps with the reward model alone, without the exact arithmetic check on top")
    add_served_args(g)
    g.add_argument("--n-gpu-layers", type=int, default=None, metavar="N", help="GPU layers per model (default: the model's `specsearch models set` value, else all if a GPU backend exists)")
    g.add_argument("--n-ctx", type=int, default=None, metavar="N", help="context tokens per model (default: automatic)")
    g.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")
    g.add_argument("--reproducible", action="store_true",
                   help="numerics that do not depend on how sequences are batched together (f32 KV cache, no "
                   "flash attention): slower, but a seeded search repeats itself and methods compared in `bench` "
                   "walk the same path where they make the same choices")


def add_served_args(g: argparse._ArgumentGroup) -> None:
    """Flags for a --large/--prm given as a server URL (core.remote_client.ServedModel)."""
    g.add_argument("--large-tokenizer", metavar="FILE.gguf", default=None,
                   help="for a served --large: a GGUF with its tokenizer and chat template (default: the small model's file)")
    g.add_argument("--prm-tokenizer", metavar="FILE.gguf", default=None,
                   help="for a served --prm: a GGUF with its tokenizer and chat template (default: the small model's file)")
    g.add_argument("--served-model", metavar="NAME", default=None,
                   help="the `model` field sent to a server (one serving several models needs it)")
    g.add_argument("--api-key-env", metavar="VAR", default=DEFAULT_API_KEY_ENV,
                   help=f"environment variable holding a server's API key (default {DEFAULT_API_KEY_ENV}; never logged or saved)")
    g.add_argument("--remote-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"seconds to wait for a server's answer (default {DEFAULT_TIMEOUT:g}; failures are retried twice)")


def served_specs(specs: dict, args: argparse.Namespace) -> dict:
    """``specs`` with each served model given the --*-tokenizer, --served-model, --api-key-env
    and --remote-timeout flags."""
    out = dict(specs)
    for role, spec in specs.items():
        if isinstance(spec, ServedModel):
            tokenizer = getattr(args, f"{role}_tokenizer", None)
            out[role] = dataclasses.replace(
                spec, tokenizer=str(Path(tokenizer).expanduser()) if tokenizer else spec.tokenizer,
                model=args.served_model or spec.model, api_key_env=args.api_key_env, timeout=args.remote_timeout)
    return out


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


def make_solver(args: argparse.Namespace, auto_memory: Path | None = None) -> Solver:
    """``auto_memory``: see core.auto_memory_store (None: bench, whose runs start cold)."""
    check_head(args)
    load_options(args, warn=False)  # a bad number is refused here, before any file is read
    choices = {role: getattr(args, role) for role in ("small", "large", "prm")}
    given = LoadOverrides(args.n_gpu_layers, args.n_ctx, args.threads)
    resolved = resolve_models(choices, {role: given for role in choices})
    if resolved.problems:
        raise SpecSearchError(" ".join(resolved.problems))
    specs = served_specs(resolved.specs, args)
    # the flag or the model manager's per-model setting: either may ask for GPU layers (of a local model)
    warn_gpu_layers(gpu_layers_asked(specs))
    if specs["small"] is None and specs["large"] is None:
        raise SpecSearchError(
            "no models given: pass --small/--large/--prm, or set defaults with `specsearch models set-default`"
        )
    return Solver(specs["small"], specs["large"], specs["prm"], prm_kind=args.prm_kind,
                  prm_head=Path(args.head).expanduser() if args.head else None, arith_check=not args.no_arith_check,
                  batch_invariant=args.reproducible, auto_memory=auto_memory)

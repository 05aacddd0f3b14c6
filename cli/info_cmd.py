"""``specsearch info MODEL.gguf``: what a GGUF file holds, without loading weights.
``specsearch info --system [--small/--large/--prm M]``: what this llama.cpp build runs on
(its system info, GPU offload, ggml's devices) and, for the models given, where their
layers went once loaded."""

from __future__ import annotations

import argparse

from specsearch.core.engine import Engine, LoadOptions
from specsearch.core.errors import SpecSearchError
from specsearch.core.gguf_info import read_gguf_info
from specsearch.core.offload import Offload, SystemReport, gpu_devices, system_report
from specsearch.models.resolve import LoadOverrides, registry_entries, resolve_models
from specsearch.models.sizes import human_bytes

from .common import human_count, print_json, warn_gpu_layers

ROLES = ("small", "large", "prm")
INFO_CTX = 256  # enough to load a model and see its layers; the KV cache stays small


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="show a GGUF model's metadata, or (--system) what llama.cpp runs on",
        description="Show a GGUF model's name, architecture, size, quantisation, vocabulary and "
        "context length. Reads only the header: fast, and it catches truncated downloads. "
        "With --system: llama.cpp's build (system info, GPU offload, devices) and, for the "
        "models given with --small/--large/--prm, the layers each put on the GPU once loaded.",
    )
    p.add_argument("model", nargs="?", help="path to a .gguf file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--template", action="store_true", help="also print the chat template")
    p.add_argument("--system", action="store_true",
                   help="show llama.cpp's system info, GPU offload support and devices instead")
    for role in ROLES:
        p.add_argument(f"--{role}", metavar="M", help=f"with --system: load this {role} model (a GGUF path or "
                       "a `specsearch models list` name) and show where its layers went")
    p.add_argument("--n-gpu-layers", type=int, default=None, metavar="N",
                   help="with --system: GPU layers to ask for (default: the model's setting, else automatic)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.system:
        return run_system(args)
    given = [f"--{name.replace('_', '-')}" for name in (*ROLES, "n_gpu_layers", "threads")
             if getattr(args, name) is not None]
    if given:
        raise SpecSearchError(f"{', '.join(given)}: only with --system")
    if args.model is None:
        raise SpecSearchError("give a .gguf file (specsearch info MODEL.gguf), or --system")
    return run_model(args)


def run_model(args: argparse.Namespace) -> int:
    info = read_gguf_info(args.model)
    if args.json:
        print_json(info.to_dict(with_template=args.template))
        return 0
    print_rows([
        ("name", info.name),
        ("architecture", info.architecture),
        ("parameters", f"{human_count(info.parameter_count)} ({info.parameter_count:,})"),
        ("quantization", info.quantization),
        ("file size", human_bytes(info.file_size)),
        ("vocab size", f"{info.vocab_size:,} ({info.tokenizer_model or 'unknown'} tokenizer)"),
        ("trained context", f"{info.context_length:,}" if info.context_length else "unknown"),
        ("chat template", "yes" if info.has_chat_template else "no"),
        ("layers", str(info.n_layers or "?")),
        ("vocab fingerprint", info.vocab_fingerprint[:16]),
    ])
    if args.template and info.chat_template:
        print("\n" + info.chat_template)
    return 0


def run_system(args: argparse.Namespace) -> int:
    if args.model is not None:
        raise SpecSearchError("--system takes models as --small/--large/--prm, not as MODEL")
    LoadOptions(n_gpu_layers=args.n_gpu_layers, n_threads=args.threads)  # a bad number is refused up front
    report = system_report()
    models = loaded_offload(args)
    if args.json:
        print_json({"system": report.to_dict(),
                    "models": {role: {"path": path, **offload.to_dict()} for role, (path, offload) in models.items()}})
        return 0
    print_rows(system_rows(report) + [(role, f"{offload.label()}  ({path})") for role, (path, offload) in models.items()])
    return 0


def system_rows(report: SystemReport) -> list[tuple[str, str]]:
    gpus = gpu_devices(list(report.devices))
    offload = "yes" if report.gpu_offload else "no (a CPU-only build: GPU layers are ignored)"
    rows = [("llama-cpp-python", report.llama_cpp_python), ("GPU offload", offload)]
    for i, d in enumerate(report.devices):
        memory = f", {human_bytes(d.memory_total)}" if d.memory_total else ""
        rows.append(("devices" if i == 0 else "", f"{d.name}: {d.description} ({d.kind}{memory})"))
    if not report.devices:
        rows.append(("devices", "none reported"))
    rows.append(("GPU devices", str(len(gpus))))
    rows.append(("system info", report.system_info))
    return rows


def loaded_offload(args: argparse.Namespace) -> dict[str, tuple[str, Offload]]:
    """role -> (path, Offload) for each model given, loaded (a file given twice loads once)."""
    choices = {role: getattr(args, role) for role in ROLES}
    if not any(choices.values()):
        return {}
    entries, _ = registry_entries()
    overrides = LoadOverrides(args.n_gpu_layers, None, args.threads)
    resolved = resolve_models(choices, {role: overrides for role in ROLES}, entries, {})  # no defaults
    if resolved.problems:
        raise SpecSearchError(" ".join(resolved.problems))
    specs = {role: spec for role, spec in resolved.specs.items() if choices[role] and spec is not None}
    warn_gpu_layers({role: spec.n_gpu_layers for role, spec in specs.items()})
    seen: dict[str, Offload] = {}
    out = {}
    for role, spec in specs.items():
        if spec.path not in seen:
            options = LoadOptions(n_ctx=spec.n_ctx or INFO_CTX, n_gpu_layers=spec.n_gpu_layers,
                                  n_threads=spec.n_threads, n_seq_max=1)
            with Engine(spec.path, options) as engine:
                seen[spec.path] = engine.offload
        out[role] = (spec.path, seen[spec.path])
    return out


def print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")

"""``specsearch info MODEL.gguf``: what a GGUF file holds, without loading weights."""

from __future__ import annotations

import argparse

from specsearch.core.gguf_info import read_gguf_info

from specsearch.models.sizes import human_bytes

from .common import human_count, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="show a GGUF model's metadata",
        description="Show a GGUF model's name, architecture, size, quantisation, vocabulary and "
        "context length. Reads only the header: fast, and it catches truncated downloads.",
    )
    p.add_argument("model", help="path to a .gguf file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--template", action="store_true", help="also print the chat template")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    info = read_gguf_info(args.model)
    if args.json:
        print_json(info.to_dict(with_template=args.template))
        return 0
    rows = [
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
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if args.template and info.chat_template:
        print("\n" + info.chat_template)
    return 0

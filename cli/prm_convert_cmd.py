"""``specsearch prm convert-head``: a published PRM's value head as a specsearch head file."""

from __future__ import annotations

import argparse
from pathlib import Path

from specsearch.core.prm_heads_convert import CONVERT_KINDS, convert_head

from .common import print_json


def register_convert(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "convert-head",
        help="convert a published PRM's value head (Skywork-o1-Open-PRM, Qwen2.5-Math-PRM) into a head file",
        description="llama.cpp's converter keeps only the language model of a value-head PRM. This reads "
        "the head's weights from the checkpoint's .safetensors file, checks them against the backbone "
        "GGUF (converted from the same checkpoint), and writes a head file for `--prm BACKBONE.gguf "
        "--prm-kind head --head HEAD.npz`. Kinds: "
        + "; ".join(f"{k.name}: {k.description}" for k in CONVERT_KINDS.values()),
    )
    p.add_argument("--kind", required=True, choices=list(CONVERT_KINDS), help="which PRM the weights come from")
    p.add_argument("--weights", required=True, metavar="FILE",
                   help="the checkpoint's model.safetensors, its model.safetensors.index.json, or its folder")
    p.add_argument("--backbone", required=True, metavar="FILE.gguf",
                   help="the GGUF converted from the same checkpoint (its SHA-256 and hidden size are recorded)")
    p.add_argument("--out", required=True, type=Path, metavar="HEAD.npz", help="where to write the head")
    p.add_argument("--prefix", default=None, metavar="NAME.",
                   help="tensor-name prefix of the head (default: " + ", ".join(
                       f"{k.name} {k.prefix}" for k in CONVERT_KINDS.values()) + ")")
    p.add_argument("--json", action="store_true", help="print a summary as one JSON object")
    p.set_defaults(func=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    head = convert_head(args.kind, args.weights, args.backbone, prefix=args.prefix)
    head.save(args.out)
    summary = {
        "out": str(args.out), "kind": args.kind, "backbone": Path(args.backbone).name,
        "backbone_sha256": head.backbone_sha256, "hidden_size": head.hidden_size,
        "prompt_format": head.prompt_format, "output": head.output,
        "layers": [list(w.shape) for w, _ in head.layers], "tensors": head.meta["tensors"],
    }
    if args.json:
        print_json(summary)
    else:
        shapes = " -> ".join(f"{w.shape[0]}x{w.shape[1]}" for w, _ in head.layers)
        print(f"wrote {args.out}: {args.kind} head ({shapes}, {head.output}) for {Path(args.backbone).name} "
              f"(SHA-256 {head.backbone_sha256[:12]}…)")
        print(f"use it with: --prm {args.backbone} --prm-kind head --head {args.out}")
    return 0

"""``specsearch generate``: plain, batched or speculative generation."""

from __future__ import annotations

import argparse
import sys

from specsearch.core.engine import Engine
from specsearch.core.sampling import SamplingParams
from specsearch.core.speculative import SpeculativeDecoder

from .common import add_load_args, load_options, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text with one model, or with a draft model (speculative decoding)",
        description="Generate N continuations of a prompt, decoded together in one batch. "
        "With --draft, the draft model proposes tokens and --model verifies them "
        "(token-level speculative decoding; greedy output is identical to --model alone).",
    )
    p.add_argument("--model", required=True, metavar="L.gguf", help="the (target) model")
    p.add_argument("--draft", metavar="S.gguf", help="a smaller model with the same vocabulary, as drafter")
    p.add_argument("--prompt", required=True, help="the prompt text ('-' reads standard input)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt as a user message in the model's chat template")
    p.add_argument("--system", help="system message for --chat")
    p.add_argument("--max-tokens", type=int, default=128, metavar="N", help="tokens per continuation (default 128)")
    p.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 = greedy (default 0)")
    p.add_argument("--top-k", type=int, default=40, metavar="K", help="default 40 (0 = off)")
    p.add_argument("--top-p", type=float, default=0.95, metavar="P", help="default 0.95")
    p.add_argument("--min-p", type=float, default=0.0, metavar="P", help="default 0")
    p.add_argument("--seed", type=int, default=0, help="continuation i uses seed+i (default 0)")
    p.add_argument("--n", type=int, default=1, metavar="N", help="number of continuations (default 1)")
    p.add_argument("--stop", action="append", default=[], metavar="STR",
                   help="stop a continuation at this string (repeatable; \\n escapes allowed)")
    p.add_argument("--draft-k", type=int, default=4, metavar="K", help="initial draft length (adapted; default 4)")
    p.add_argument("--fixed-k", action="store_true", help="do not adapt the draft length")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_load_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.n < 1 or args.max_tokens < 1:
        print("specsearch: error: --n and --max-tokens must be at least 1", file=sys.stderr)
        return 2
    prompt_text = sys.stdin.read() if args.prompt == "-" else args.prompt
    stops = [s.encode("utf-8").decode("unicode_escape") for s in args.stop]
    options = load_options(args)
    target = Engine(args.model, options)
    if args.chat:
        messages = ([{"role": "system", "content": args.system}] if args.system else [])
        messages.append({"role": "user", "content": prompt_text})
        prompt = target.chat_tokens(messages)
    else:
        prompt = target.tokenize(prompt_text)
    sampling = SamplingParams(args.temperature, args.top_k, args.top_p, args.min_p)
    seeds = [args.seed + i for i in range(args.n)]
    kwargs = dict(max_tokens=args.max_tokens, sampling=sampling, seeds=seeds, stop=stops)
    if args.draft:
        draft = Engine(args.draft, options)
        decoder = SpeculativeDecoder(target, draft, k=args.draft_k, adaptive=not args.fixed_k)
        out = decoder.generate([prompt], args.n, **kwargs)
    else:
        out = target.generate([prompt], args.n, **kwargs)
    stats = out.stats.to_dict(speculative=bool(args.draft))
    if args.json:
        print_json({
            "texts": out.texts,
            "tokens": [g.tokens for g in out.generations],
            "finish_reasons": [g.finish_reason for g in out.generations],
            "stats": stats,
        })
        return 0
    for i, gen in enumerate(out.generations):
        if args.n > 1:
            print(f"--- continuation {i + 1} ({gen.finish_reason}, {len(gen.tokens)} tokens)")
        print(gen.text)
    line = f"[{stats['generated_tokens']} tokens in {stats['wall_seconds']:.2f}s, {stats['tokens_per_second']:.1f} tok/s"
    if args.draft:
        rate = stats["acceptance_rate"]
        line += f"; drafted {stats['drafted']}, accepted {stats['accepted']}"
        line += f" ({rate:.0%})" if rate is not None else ""
        line += f", target passes {stats['target_passes']}"
    print(line + "]", file=sys.stderr)
    return 0

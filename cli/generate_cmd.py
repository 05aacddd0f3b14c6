"""``specsearch generate``: plain, batched or speculative generation.

Every number is checked (SamplingParams, LoadOptions, the counts here) before
a model loads.  ``--stop`` takes text as written, with backslash escapes
(``\\n``, ``\\t``, ``\\u2192``) decoded and every other character kept.
"""

from __future__ import annotations

import argparse
import codecs
import re
import sys

from specsearch.core.engine import Engine
from specsearch.core.options import Bounds
from specsearch.core.sampling import SamplingParams
from specsearch.core.speculative import SpeculativeDecoder

from .common import add_load_args, check_flags, load_options, print_json


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
    p.add_argument("--stop", action="append", default=[], metavar="STR", type=stop_string,
                   help="stop a continuation at this string (repeatable; \\n escapes allowed)")
    p.add_argument("--draft-k", type=int, default=4, metavar="K", help="initial draft length (adapted; default 4)")
    p.add_argument("--fixed-k", action="store_true", help="do not adapt the draft length")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_load_args(p)
    p.set_defaults(func=run)


# A Python-style backslash escape; anything else in a stop string is literal text.
_ESCAPE = re.compile(r"""\\(?:[\\'"abfnrtv]|[0-7]{1,3}|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^}]*\})""")


def stop_string(text: str) -> str:
    """--stop: ``text`` with its backslash escapes decoded.  Only the escapes go through
    the unicode_escape codec: decoding the whole string there would read its UTF-8
    bytes as Latin-1 and turn "→" into three other characters."""
    try:
        return _ESCAPE.sub(lambda m: codecs.decode(m.group(0), "unicode_escape"), text)
    except UnicodeDecodeError as exc:  # \N{NO SUCH NAME}
        raise argparse.ArgumentTypeError(f"bad escape in {text!r}: {exc.reason}") from None


# The counts of this command (the sampling and load numbers have their own checks).
GENERATE_BOUNDS = {
    "n": Bounds(1, kind=int),
    "max_tokens": Bounds(1, kind=int),
    "draft_k": Bounds(1, 256, kind=int),  # the draft-length policy weighs every length up to it
}


def run(args: argparse.Namespace) -> int:
    check_flags(args, GENERATE_BOUNDS)
    sampling = SamplingParams(args.temperature, args.top_k, args.top_p, args.min_p)
    options = load_options(args)
    prompt_text = sys.stdin.read() if args.prompt == "-" else args.prompt
    target = Engine(args.model, options)
    if args.chat:
        messages = ([{"role": "system", "content": args.system}] if args.system else [])
        messages.append({"role": "user", "content": prompt_text})
        prompt = target.chat_tokens(messages)
    else:
        prompt = target.tokenize(prompt_text)
    seeds = [args.seed + i for i in range(args.n)]
    kwargs = dict(max_tokens=args.max_tokens, sampling=sampling, seeds=seeds, stop=args.stop)
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

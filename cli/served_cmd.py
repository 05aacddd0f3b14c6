"""``specsearch models served …``: the served models the model manager remembers
(models/served.py), usable as ``--large NAME`` / ``--prm NAME``."""

from __future__ import annotations

import argparse
from pathlib import Path

from specsearch.core.remote_client import DEFAULT_API_KEY_ENV, DEFAULT_TIMEOUT, ServedModel
from specsearch.models.served import add_served, load_served, remove_served

from .common import print_json


def register(models_actions: argparse._SubParsersAction) -> None:
    p = models_actions.add_parser(
        "served", help="served models (OpenAI-compatible completions servers) by name",
        description="Remember a server as a name usable as --large NAME or --prm NAME. The API key is "
        "read from the environment variable named with --api-key-env at each request, never stored.")
    s = p.add_subparsers(dest="served_command", metavar="ACTION")
    s.required = True
    c = s.add_parser("add", help="remember a server under a name")
    c.add_argument("name")
    c.add_argument("url", help="base URL, e.g. http://gpu-box:8080 (…/v1 is added when missing)")
    c.add_argument("--tokenizer", metavar="FILE.gguf", help="GGUF with the served model's tokenizer "
                   "(default: the small model's file at run time)")
    c.add_argument("--model", help="the `model` field sent with each request")
    c.add_argument("--api-key-env", default=DEFAULT_API_KEY_ENV, metavar="VAR")
    c.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S")
    c.set_defaults(func=cmd_add)
    c = s.add_parser("list", help="the served models")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_list)
    c = s.add_parser("rm", help="forget a served model")
    c.add_argument("name")
    c.set_defaults(func=cmd_rm)


def cmd_add(args: argparse.Namespace) -> int:
    tokenizer = str(Path(args.tokenizer).expanduser().resolve()) if args.tokenizer else None
    add_served(args.name, ServedModel(args.url, tokenizer=tokenizer, model=args.model,
                                      api_key_env=args.api_key_env, timeout=args.timeout))
    print(f"served model {args.name}: {args.url}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    served = load_served()
    if args.json:
        print_json({name: s.to_dict() for name, s in served.items()})
        return 0
    if not served:
        print("no served models (add one with `specsearch models served add NAME URL`)")
    for name, s in served.items():
        extra = ", ".join(f"{k} {v}" for k, v in (("model", s.model), ("tokenizer", s.tokenizer),
                                                  ("key from", s.api_key_env)) if v)
        print(f"{name:20} {s.base_url}  timeout {s.timeout:g} s" + (f"  ({extra})" if extra else ""))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    remove_served(args.name)
    print(f"forgot served model {args.name}")
    return 0

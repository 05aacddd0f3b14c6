"""``specsearch`` command line: one module per subcommand, each with ``register``."""

from __future__ import annotations

import argparse
import importlib
import sys

from specsearch.core.errors import SpecSearchError

# Subcommand modules; each defines register(subparsers) and sets args.func.
COMMANDS = ("info", "generate", "solve", "bench", "models", "prm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specsearch",
        description=(
            "Speculative Search on your own machine: a small model drafts reasoning steps, "
            "a reward model checks them, the large model rewrites only the weak ones."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"specsearch.cli.{name}_cmd")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpecSearchError as exc:
        print(f"specsearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("specsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""``specsearch`` command line: one module per subcommand, each with ``register``.

:func:`main` ends every run with an exit code and at most one line of error:
what a user can cause (a SpecSearchError, a value a check refused, a file that
cannot be read or written) is ``specsearch: error: ...`` and exit code 2, an
interrupt is exit code 130, and anything else is a bug, reported in one line
with the way to see its traceback (``SPECSEARCH_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from specsearch.core.errors import SpecSearchError
from specsearch.core.text import one_line

# Subcommand modules; each defines register(subparsers) and sets args.func.
COMMANDS = ("info", "generate", "solve", "bench", "models", "prm")

DEBUG_ENV = "SPECSEARCH_DEBUG"
"""Set to 1 to print the traceback of any error as well."""

EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 2, 1, 130


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
    """Run one command; argparse's own errors exit (code 2) from ``parse_args``."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        _report("interrupted")
        return EXIT_INTERRUPTED
    except (SpecSearchError, ValueError) as exc:  # ValueError: a value a check refused
        _report(f"error: {exc}")
        return EXIT_ERROR
    except OSError as exc:  # a missing or unreadable file, a full disk
        _report(f"error: {describe_os_error(exc)}")
        return EXIT_ERROR
    except Exception as exc:  # a bug: say so in one line, the traceback on request
        hint = "" if _debug() else f" (run with {DEBUG_ENV}=1 for the traceback)"
        _report(f"internal error: {type(exc).__name__}: {exc}{hint}")
        return EXIT_BUG


def describe_os_error(exc: OSError) -> str:
    """"PATH: reason" for a file error, else the error's own text."""
    reason = exc.strerror or str(exc)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _report(message: str) -> None:
    if _debug():
        traceback.print_exc()
    print(f"specsearch: {one_line(message)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

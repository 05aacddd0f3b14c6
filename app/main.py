"""``specsearch-tui``: parse the command line, then run the app."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from specsearch.core.config import METHODS
from specsearch.core.prm import prm_kind_names

from .settings import ALIASES, FIELD_NAMES, ROLES, SettingsStore, env_name, field_docs, field_type

CHOICES = {
    "method": METHODS,
    "prm_kind": prm_kind_names(),
    "threshold_stat": ("mean", "max", "quantile"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specsearch-tui",
        description="Watch speculative search solve math questions: which thoughts the small model "
        "drafted, which the reward model accepted, which the large model regenerated, and how much "
        "faster it was than the large model alone. Options override the saved settings (F7 in the app) "
        "for this run only; so do environment variables SPECSEARCH_<OPTION> (e.g. SPECSEARCH_SMALL, "
        "SPECSEARCH_METHOD, SPECSEARCH_BEAM).",
        epilog="Keys: F2 chat, F3 race, F4 tutoring, F5 history, F6 models, F7 settings, Ctrl+P command palette, "
        "Esc cancels a search, Ctrl+C quits. Models are managed with `specsearch models`.",
    )
    parser.add_argument("--mode", choices=("chat", "race", "tutor", "history", "models"), default="chat",
                        help="screen to start on (default chat)")
    docs = field_docs()
    models = parser.add_argument_group("models (a GGUF path or a model-manager name)")
    search = parser.add_argument_group("search and model loading")
    for name in FIELD_NAMES:
        flag = "--" + ALIASES.get(name, name).replace("_", "-")
        group = models if name in ROLES else search
        kind = field_type(name)
        help_text = docs.get(name, "") + f" [env {env_name(ALIASES.get(name, name))}]"
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": help_text.replace("%", "%%")}
        if name in CHOICES:
            kwargs["choices"] = CHOICES[name]
        elif kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction  # --arith-check / --no-arith-check
        else:
            kwargs["type"] = kind
        if name in ROLES:
            kwargs["metavar"] = {"small": "S.gguf", "large": "L.gguf", "prm": "P.gguf"}[name]
        elif name == "prm_head":
            kwargs["metavar"] = "FILE"
        elif kind in (int, float):
            kwargs["metavar"] = "N" if kind is int else "X"
        group.add_argument(flag, **kwargs)
    return parser


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in FIELD_NAMES if getattr(args, name, None) is not None}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        store = SettingsStore.load(overrides_from_args(args))
        store.effective.validate()
    except ValueError as exc:
        print(f"specsearch-tui: error: {exc}", file=sys.stderr)
        return 2

    from .app import SpecSearchApp  # Textual loads only when the app really runs

    app = SpecSearchApp(store, start_mode=args.mode)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())

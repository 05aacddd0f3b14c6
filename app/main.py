"""``specsearch-tui``: parse the command line, then run the app."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from specsearch.core.options import argparse_options

from .settings import FIELD_NAMES, ROLES, SettingsStore, env_name, setting_options


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
    models = parser.add_argument_group("models (a GGUF path or a model-manager name)")
    search = parser.add_argument_group("search and model loading")
    for name, option in setting_options().items():  # one option per Settings field, with its short name
        group = models if name in ROLES else search
        env = " or ".join(env_name(n) for n in (name, *option.aliases))
        kwargs = argparse_options(option, f"[env {env}]")
        if name in ROLES:
            kwargs["metavar"] = {"small": "S.gguf", "large": "L.gguf", "prm": "P.gguf"}[name]
        elif name == "prm_head":
            kwargs["metavar"] = "FILE"
        group.add_argument(*option.flags, **kwargs)
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

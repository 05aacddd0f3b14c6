"""Which reward model a search used: as data, and as one line for people.

:meth:`specsearch.core.api.Solver.prm_description` builds the data; every
search records it in its config under :data:`PRM_KEY` (the ``SearchStarted``
event's and the result's), so the CLI, the benchmark, the app and saved
history all read the same thing and show it with :func:`prm_label`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

PRM_KEY = "prm"
"""Key of the PRM description in a search's config dict."""


def describe_prm(kind: str, model: str | Path | None, head: str | Path | None, arith_check: bool) -> dict[str, Any]:
    """{"kind", "model", "head", "arith_check"}: file *names* (not paths), None where there is none."""
    return {
        "kind": kind,
        "model": Path(model).name if model else None,
        "head": Path(head).name if head else None,
        "arith_check": bool(arith_check),
    }


def prm_of(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The PRM description recorded in a search's config, if any."""
    value = (config or {}).get(PRM_KEY)
    return dict(value) if isinstance(value, Mapping) and value.get("kind") else None


def prm_label(description: Mapping[str, Any] | None) -> str:
    """'judge on small.gguf, arithmetic check on'; 'head on b.gguf with head h.npz, …'; 'arith (no model)'."""
    if not description or not description.get("kind"):
        return "unknown"
    kind, model, head = description["kind"], description.get("model"), description.get("head")
    if not model:  # a kind that loads no model is its own check
        return f"{kind} (no model)"
    text = f"{kind} on {model}" + (f" with head {head}" if head else "")
    return text + f", arithmetic check {'on' if description.get('arith_check') else 'off'}"

"""File sizes for people: the one formatter the CLI and the app share."""

from __future__ import annotations

from typing import Any


def human_bytes(n: Any) -> str:
    """1536 -> '1.5 KB'; '?' for an unknown size (None, not a number, negative)."""
    if isinstance(n, bool) or not isinstance(n, (int, float)) or n < 0:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"

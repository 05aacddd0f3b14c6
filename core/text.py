"""Text on one line, for prompts and for display (the CLI, the TUI and the PRM formats share it)."""

from __future__ import annotations

import unicodedata

# Control and format characters (NUL, escape, zero-width joiners, …) would break a line on a
# terminal or in a prompt as surely as a newline does: they become spaces too.
_INVISIBLE = ("Cc", "Cf", "Zl", "Zp")


def one_line(text: str, width: int | None = None) -> str:
    """``text`` with line breaks and control characters as spaces and runs of spaces as one;
    cut to ``width`` characters with an ellipsis when given."""
    chars = [" " if unicodedata.category(c) in _INVISIBLE else c for c in text]
    flat = " ".join("".join(chars).split())
    if width is None or len(flat) <= width:
        return flat
    return flat[: max(0, width - 1)] + "…"

"""Small text helpers shared by the core, the CLI and the TUI: text on one line (prompts,
display) and the brace groups of LaTeX (the arithmetic check and the TUI's math rendering)."""

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


def brace_group(text: str, start: int) -> tuple[str, int] | None:
    """The contents of the ``{...}`` group at ``start`` (spaces skipped) and the index after
    it; None when no group opens there or it never closes."""
    while start < len(text) and text[start] == " ":
        start += 1
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None

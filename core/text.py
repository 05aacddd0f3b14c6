"""Small text helpers shared by the core, the CLI and the TUI: text on one line (prompts,
display), the brace groups of LaTeX (the arithmetic check and the TUI's math rendering) and
whether a thought only leads in to the next (the search joins them), and the lines of JSON Lines text."""

from __future__ import annotations

import re
import unicodedata

# Control and format characters (NUL, escape, zero-width joiners, …) would break a line on a
# terminal or in a prompt as surely as a newline does: they become spaces too.
_INVISIBLE = ("Cc", "Cf", "Zl", "Zp")


def jsonl_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) for each non-blank line of JSON Lines text.  A line ends at
    "\n" only (a "\r" before it is JSON whitespace): str.splitlines would also split inside a
    string value holding U+2028 or another Unicode line break, as GSM8K's training file does."""
    return [(i, line) for i, line in enumerate(text.split("\n"), 1) if line.strip()]


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


# A line that is only a heading: "## Step 2", "**Step 1: Count the eggs.**", "__Plan__".
_HEADING_LINE = re.compile(r"(#{1,6}\s.*|\*\*[^*\n]+\*\*:?|__[^_\n]+__:?)")


def leads_in(thought: str) -> bool:
    """Whether a thought only leads in to what follows — it ends with ':', is a lone heading, or
    leaves a display-math block or a code block open — so the paragraph after it belongs to the same step."""
    text = thought.strip()
    if not text or "\\boxed" in text:
        return False
    if text.endswith(":") or _HEADING_LINE.fullmatch(text):
        return True
    return text.count("\\[") > text.count("\\]") or text.count("$$") % 2 == 1 or text.count("```") % 2 == 1

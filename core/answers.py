"""Final-answer extraction and answer equivalence.

``extract_answer`` finds the final answer a solution commits to (the last
``\\boxed{...}``, else "The answer is X", else GSM8K's ``#### X``);
``is_equivalent`` decides whether it matches a reference answer using
`math-verify <https://github.com/huggingface/Math-Verify>`_ (LaTeX/numeric/
symbolic comparison), falling back to a normalised string comparison.

Thread safety: math-verify guards parsing and comparison with ``signal.alarm``
timeouts, which raise ``ValueError`` outside the main thread -- and our searches
run in worker threads.  We therefore call it with its timeouts disabled
(``parse(..., parsing_timeout=None)``, ``verify(..., timeout_seconds=None)``),
serialise all calls through one lock (the ANTLR LaTeX parser and the sympy
caches behind it are not documented as thread-safe), and bound the size of
what we hand it (:data:`MAX_PARSE_CHARS`) so a runaway model output cannot make
sympy spin for long.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from typing import Any

__all__ = [
    "MAX_PARSE_CHARS",
    "extract_answer",
    "final_answer_present",
    "grade",
    "is_equivalent",
    "normalize_answer",
]

# Answers longer than this are compared as normalised strings only.
MAX_PARSE_CHARS = 400

_LOCK = threading.RLock()


class _DropTimeoutWarning(logging.Filter):
    """math-verify warns once that its timeout is disabled; we disable it on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutWarning())


# --------------------------------------------------------------------------- extraction

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
_ANSWER_IS_RE = re.compile(r"(?:final\s+)?answer\s+is\s*:?\s*", re.IGNORECASE)
_HASH_RE = re.compile(r"####[ \t]*([^\n]*)")
# A GSM8K "#### X" answer must look like a number ("#### Step 2" is a heading).
_HASH_NUMBER_RE = re.compile(r"^[-+\u2212]?\s*\\?\$?\s*[-+\u2212]?\d")
_SENTENCE_END_RE = re.compile(r"\.(?:\s|$)")
# What follows "answer is" must look like math (a digit, LaTeX, an operator) or be a choice
# letter: "our answer is accurate." states no answer.
_MATHY_RE = re.compile(r"[\d\\=+\-*/^(){}\[\]<>]|^[A-Za-z]$|^\([A-Za-z]\)$")
# A plain number followed by words (units): "18 dollars", "3.5 hours per day".
_NUMBER_THEN_WORDS_RE = re.compile(r"^(\\?\$?\s*[-+]?\d[\d,]*(?:\.\d+)?)\s+[A-Za-z]{2,}\b(?!\s*[=^*/+(])")


def _balanced(text: str, open_pos: int) -> str | None:
    """Content of the brace group opening at ``text[open_pos] == '{'``; None if unclosed."""
    depth = 0
    i = open_pos
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # skip escaped characters such as \{ and \}
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_pos + 1 : i]
        i += 1
    return None


def _last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``)."""
    found: str | None = None
    for m in _BOX_RE.finditer(text):
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            content = _balanced(text, j)
        elif j > m.end():  # "\boxed 5": the argument is the next token
            tok = re.match(r"[^\s$]+", text[j:])
            content = tok.group(0) if tok else None
        else:
            content = None
        if content is not None and content.strip():
            found = content
    return found


def _clean(answer: str) -> str:
    """Strip whitespace, math delimiters and a trailing full stop."""
    s = answer.strip()
    for _ in range(4):  # a few rounds: "$18$." -> "$18$" -> "18"
        before = s
        s = s.strip()
        while s.endswith(".") and not s.endswith("\\."):
            s = s[:-1].rstrip()
        if s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2]
        elif s.startswith("\\[") and s.endswith("\\]"):
            s = s[2:-2]
        # "$" delimiters (but not an escaped "\$" at the end)
        if s.startswith("$"):
            s = s.lstrip("$")
        if s.endswith("$") and not s.endswith("\\$"):
            s = s.rstrip("$")
            if s.endswith("\\"):  # "\$$" -> keep the escaped dollar
                s += "$"
        if s == before:
            break
    return s.strip()


def _after_answer_is(text: str) -> str | None:
    matches = list(_ANSWER_IS_RE.finditer(text))
    for m in reversed(matches):
        rest = text[m.end() :].split("\n", 1)[0]
        boxed = _last_boxed(rest)
        if boxed is not None:
            return boxed
        end = _SENTENCE_END_RE.search(rest)
        if end is not None:
            rest = rest[: end.start()]
        cleaned = _clean(rest)
        unit = _NUMBER_THEN_WORDS_RE.match(cleaned)
        if unit is not None:  # "18 dollars", "$18 per day" -> "18"
            cleaned = _clean(unit.group(1))
        if cleaned and _MATHY_RE.search(cleaned):
            return cleaned
    return None


def _after_hashes(text: str) -> str | None:
    for m in reversed(list(_HASH_RE.finditer(text))):
        content = _clean(m.group(1))
        if content and _HASH_NUMBER_RE.match(content):
            return content
    return None


def extract_answer(text: str | None) -> str | None:
    """The final answer a solution commits to, or None.

    Priority: the last complete ``\\boxed{...}`` (or ``\\fbox{...}``); else the
    last "The answer is X" / "The final answer is X" (up to the end of the
    sentence); else the last GSM8K-style ``#### X``.  Surrounding ``$``,
    whitespace and a trailing full stop are stripped.
    """
    if not text:
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        cleaned = _clean(boxed)
        return cleaned or None
    return _after_answer_is(text) or _after_hashes(text)


def final_answer_present(text: str | None) -> bool:
    """Whether a thought states a final answer (so the solution it ends is finished)."""
    return extract_answer(text) is not None


# --------------------------------------------------------------------------- equivalence

_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_THOUSANDS_RE = re.compile(r"(?<![\d.])(\d{1,3})((?:,\d{3})+)(?![\d])")


def normalize_answer(answer: str) -> str:
    """A canonical string form used when math-verify cannot parse an answer."""
    s = _clean(answer)
    s = _TEXT_RE.sub(r"\1", s)
    for old, new in (
        ("\\left", ""),
        ("\\right", ""),
        ("\\!", ""),
        ("\\,", ""),
        ("\\;", ""),
        ("\\:", ""),
        ("\\ ", ""),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("^\\circ", ""),
        ("^{\\circ}", ""),
        ("\\$", ""),
        ("\\%", ""),
        ("%", ""),
        ("\u2212", "-"),
    ):
        s = s.replace(old, new)
    s = re.sub(r"\s+", "", s)
    s = _THOUSANDS_RE.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), s)
    s = re.sub(r"^(-?\d+)\.0+$", r"\1", s)  # 18.0 -> 18
    return s.lower()


@functools.lru_cache(maxsize=2048)
def _parse(answer: str) -> tuple[Any, ...]:
    """math-verify's parse of one bare answer, wrapped in \\boxed{} (call under _LOCK)."""
    from math_verify import parse

    return tuple(parse("\\boxed{" + answer + "}", parsing_timeout=None))


def _math_equal(reference: str, predicted: str) -> bool | None:
    """math-verify's verdict; None when either side does not parse to a sympy object."""
    try:
        from math_verify import verify
    except ImportError:  # pragma: no cover - declared dependency
        return None
    with _LOCK:
        gold = _parse(reference)
        pred = _parse(predicted)
        # parse() appends the raw string as a fallback; require a real parse.
        if not any(not isinstance(g, str) for g in gold) or not any(
            not isinstance(p, str) for p in pred
        ):
            return None
        try:
            return bool(verify(list(gold), list(pred), timeout_seconds=None))
        except Exception:  # math-verify swallows most errors; be safe anyway
            return None


def is_equivalent(predicted: str | None, reference: str) -> bool:
    """Whether ``predicted`` is mathematically the same answer as ``reference``.

    Both are bare answers (as returned by :func:`extract_answer`, or dataset
    answers such as ``"18"``, ``"1,000"``, ``"\\frac{1}{2}"``,
    ``"(3, \\frac{\\pi}{2})"``).  Safe to call from any thread.
    """
    if predicted is None or reference is None:
        return False
    pred = _clean(str(predicted))
    ref = _clean(str(reference))
    if not pred or not ref:
        return False
    if normalize_answer(pred) == normalize_answer(ref):
        return True
    if len(pred) > MAX_PARSE_CHARS or len(ref) > MAX_PARSE_CHARS:
        return False
    verdict = _math_equal(ref, pred)
    return bool(verdict)


def grade(text: str | None, reference: str) -> bool:
    """Whether the final answer in ``text`` matches ``reference``."""
    return is_equivalent(extract_answer(text), reference)

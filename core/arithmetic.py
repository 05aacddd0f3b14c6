"""Exact arithmetic check of reasoning steps.

A step that writes ``20 - 12 = 9`` is wrong whatever a reward model thinks of
it.  :func:`check_step` finds the equations a step writes (plain text, LaTeX,
GSM8K calculator annotations ``<<48/2=24>>``), evaluates their left side
exactly with fractions and compares it with the number stated on the right.

The check is built to raise no false alarms: anything not confidently
parseable as plain arithmetic is ignored -- variables (``x + 2 = 5``), algebra
next to letters (``2x``, ``f(3)``), times and ratios (``3:30``, ``3:2``), mixed
numbers, percentages added to plain numbers (``80 + 20%``), number words
(``5 hundred``), modular arithmetic, unit conversions (``0.5 h * 2 = 60 min``),
and expressions that a preceding word may continue (``half of 10 + 2``).  A
stated result may be rounded or truncated to its own written precision
(``10/3 = 3.33``, ``7/2 = 3``); ``≈`` and ``...`` are more lenient still.

:class:`ArithmeticGuard` puts the check on top of any reward model, and the
PRM kind ``arith`` is the check alone (no model).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from .prm import PRMKind, RewardModel, register_prm_kind
from .text import brace_group

__all__ = ["ArithmeticGuard", "ArithmeticPRM", "FLAGGED_SCORE", "WrongEquation", "check_step", "explain_step"]

FLAGGED_SCORE = 0.02
"""The highest score :class:`ArithmeticGuard` lets a step with a wrong equation keep:
below any useful threshold, yet siblings that are all flagged keep the inner model's order."""


@dataclass(frozen=True)
class WrongEquation:
    """An equation whose stated result is not the value of its left side."""

    expression: str  # the left side, as written (operators shown as −, ×)
    stated: str  # the result the step wrote
    actual: str  # the exact value of the expression

    def describe(self) -> str:
        """'20 − 12 = 8, not 9'"""
        return f"{self.expression} = {self.actual}, not {self.stated}"


class _Unclear(Exception):
    """The expression is not plain arithmetic we can evaluate with confidence."""


# ------------------------------------------------------------ normalising ---
_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_UNICODE = {
    "−": "-", "–": "-", "‒": "-", "×": "*", "⋅": "*", "·": "*", "∙": "*", "∗": "*", "÷": "/",
    "≃": "≈", "≅": "≈", "²": "^2", "³": "^3", "…": "...", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
    "\u2060": "", "\u200b": "",
}
_POISON = "¤"  # an adjacent junk character: the equation it touches is skipped
_BOUNDARY = "¦"  # the edge of a math region or a list item: arithmetic never runs across it
_LATEX_SIMPLE = [
    (re.compile(r"\\[dt]?frac(?![a-zA-Z])\s*(\d)\s*(\d)"), r"\\frac{\1}{\2}"),  # \frac12
    (re.compile(r"\\(?:times|cdot|ast)(?![a-zA-Z])"), " * "),
    (re.compile(r"\\div(?![a-zA-Z])"), " / "),
    (re.compile(r"\\(?:approx|simeq|thickapprox|approxeq)(?![a-zA-Z])"), " ≈ "),
    (re.compile(r"\\(?:ldots|dots)(?![a-zA-Z])"), "..."),
    (re.compile(r"\\(?:neq|ne)(?![a-zA-Z])"), " ≠ "),
    (re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?:\.|(?![a-zA-Z]))"), ""),  # f\left( stays f(
    (re.compile(r"\\(?:quad|qquad|displaystyle|textstyle)(?![a-zA-Z])"), " "),
    (re.compile(r"\\!"), ""),  # 729,\!000
    (re.compile(r"\\[,;:> ]"), " "),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\\\$"), "$"),
    (re.compile(r"\\\\"), "\n"),
    (re.compile(r"\\[()\[\]]"), f" {_BOUNDARY} "),
]
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname|rm|mathit)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dt]?frac(?![a-zA-Z])\s*")
_SQRT = re.compile(r"\\sqrt(?![a-zA-Z])\s*")
_UNWRAP = re.compile(r"\\(?:boxed|fbox)\s*")
_TIMES_X = re.compile(r"(?<=[\d)])[ \t]*[xX][ \t]*(?=[\d(.])")
_TIMES_X_UNIT = re.compile(r"(\d[\d,.]*[ \t]+[a-z]{2,}(?:[ \t]+[a-z]{2,})?)[ \t]+[xX][ \t]+(?=[$€£]?\d)")
_PER_UNIT = re.compile(r"(?<=[\w%])[ \t]*/[ \t]*([a-z]{3,})\b")
_PER_WORD = re.compile(r"(?<=[a-z\d])[ \t]+(?:per[ \t]+[a-z]+(?:[ \t]+[a-z]+)?|each)(?=[ \t]*(?:[-+*/=×]|x[ \t]))")
_GLUED_UNIT = re.compile(r"(?<=\d)(km|cm|mm|kgs?|mg|ml|mph|kph|ft|lbs?|oz|hrs?|mins?|secs?|yds?|mi)\b")
_BULLET = re.compile(r"\n[ \t]*(?:[-*•+]|\d{1,2}[.)])[ \t]+")
_PERCENT_WORD = re.compile(r"(?<=\d)\s*(?:percent|per cent)\b", re.IGNORECASE)


_PLAIN_NUMBER = re.compile(r"\s*-?[\d.,]+\s*")


def _convert_fracs(text: str) -> str:
    """\\frac{a}{b} -> (a/b) or ((a)/(b)); a digit right before it (a mixed number) poisons it."""
    out, pos = [], 0
    for m in _FRAC.finditer(text):
        if m.start() < pos:
            continue
        num = brace_group(text, m.end())
        den = brace_group(text, num[1]) if num else None
        if num is None or den is None:
            continue
        a, b = _convert_fracs(num[0]), _convert_fracs(den[0])
        before = text[pos : m.start()]
        mixed = re.search(r"\d\s*$", before) is not None
        simple = _PLAIN_NUMBER.fullmatch(a) and _PLAIN_NUMBER.fullmatch(b)
        body = f"({a.strip()}/{b.strip()})" if simple else f"(({a})/({b}))"
        out += [before, _POISON if mixed else "", body]
        pos = den[1]
    out.append(text[pos:])
    return "".join(out)


def _convert_groups(text: str, pattern: re.Pattern[str], head: str) -> str:
    """``\\cmd{x}`` -> ``head(x)`` for each match of ``pattern`` followed by a brace group."""
    out, pos = [], 0
    for m in pattern.finditer(text):
        if m.start() < pos:
            continue
        group = brace_group(text, m.end())
        if group is None:
            if text[m.end() : m.end() + 1] == "[":  # \sqrt[3]{..}: an n-th root
                out += [text[pos : m.start()], _POISON]
                pos = m.end()
            continue
        out += [text[pos : m.start()], f"{head}({group[0]})"]
        pos = group[1]
    out.append(text[pos:])
    return "".join(out)


def _normalise(text: str) -> str:
    """Plain arithmetic notation: LaTeX and unicode operators become + - * / ^ ( ) % = ≈."""
    for k, v in _UNICODE.items():
        text = text.replace(k, v)
    text = text.replace("{,}", ",")
    text = re.sub(r"(?<=\d)\\,(?=\d{3}(?!\d))", "", text)  # 1\,000: a thin-space thousands separator
    for _ in range(3):  # nested \text{} are rare; three passes are plenty
        text = _TEXT_CMD.sub(lambda m: f" {m.group(1)} ", text)
    for pattern, repl in _LATEX_SIMPLE:
        text = pattern.sub(repl, text)
    text = _convert_groups(text, _UNWRAP, "")
    text = _convert_fracs(text)
    text = _convert_groups(text, _SQRT, "√")
    text = re.sub(r"[$€£¥₹](?=\s*[\d.])", " ", text)  # $1,200: currency
    text = _PER_UNIT.sub(r" \1", text)  # $50/night -> 50 night (a unit)
    text = _PER_WORD.sub("", text)  # 42 teeth per dog * 5 -> 42 teeth * 5
    text = _GLUED_UNIT.sub(r" \1", text)  # 300m, 30mph, 2239km
    text = re.sub(r"(?<=\d)-(?=[a-z]{2,})", " ", text)  # a 60-foot rope
    text = text.replace("$", f" {_BOUNDARY} ").replace("**", "^").replace("&", " ")
    text = _BULLET.sub(f"\n {_BOUNDARY} ", text)
    text = text.replace("{", "(").replace("}", ")").replace("[", "(").replace("]", ")")
    text = _PERCENT_WORD.sub("%", text)
    text = _TIMES_X.sub(" * ", text)
    text = _TIMES_X_UNIT.sub(r"\1 * ", text)
    return text


# ------------------------------------------------------------- tokenising ---
@dataclass
class _Tok:
    kind: str  # NUM OP LP RP PCT EQ ELL WORD CMD SQRT OTHER, later OF and UNIT
    text: str
    gap: bool  # whitespace before it
    value: Fraction | None = None
    decimals: int = 0
    approx: bool = False  # EQ: ≈


_TOKEN = re.compile(
    r"(?P<NUM>\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"|(?P<REL>[<>!:=≈≠≤≥≡]+)"
    r"|(?P<ELL>\.\.\.)"
    r"|(?P<OP>[-+*/^])"
    r"|(?P<LP>\()|(?P<RP>\))|(?P<PCT>%)|(?P<SQRT>√)"
    r"|(?P<CMD>\\[A-Za-z]+)"
    r"|(?P<WORD>[A-Za-z]+(?:['-][A-Za-z]+)*)"
    r"|(?P<OTHER>\S)"
)


def _tokenise(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    last_end = 0
    for m in _TOKEN.finditer(text):
        kind, s = m.lastgroup, m.group()
        gap = m.start() > last_end
        last_end = m.end()
        if kind == "NUM":
            plain = s.replace(",", "")
            decimals = len(plain.split(".")[1]) if "." in plain else 0
            toks.append(_Tok("NUM", s, gap, Fraction(plain if not plain.startswith(".") else "0" + plain), decimals))
        elif kind == "REL":
            if s in ("=", "≈"):
                toks.append(_Tok("EQ", s, gap, approx=s == "≈"))
            else:  # ==, <=, =>, :=, :, ≠ ... : not an equation
                toks.append(_Tok("OTHER", s, gap))
        else:
            toks.append(_Tok(kind, s, gap))
    return toks


# Words that make nearby arithmetic mean something else: number words, powers,
# operations written out, functions, modular arithmetic.  A run of arithmetic
# right after one of them (``half of 10 + 2``) may be only part of an expression.
_MATH_WORDS = frozenset("""
    hundred hundreds thousand thousands million millions billion billions trillion dozen dozens
    score grand k m bn mn squared cubed square cube root roots power powers sqrt
    times twice thrice double triple half halves third thirds quarter quarters fourth fourths
    fifth fifths sixth sixths tenth tenths percent percentage plus minus over less more
    divided multiplied product sum difference quotient mod modulo remainder rem
    sin cos tan log ln exp lg e pi i x y z n
""".split())
# Linking words: harmless before arithmetic ("a total of 14 + 16") unless they follow a
# number or one of the words above ("half of 10 + 2", "divided by 2 + 3").
_LINKS = frozenset("of by than into".split())
# A number followed by one of these is not the whole value ("= 12 hundred", "= 4 squared").
_MAGNITUDES = frozenset("""
    hundred hundreds thousand thousands million millions billion billions trillion trillions dozen dozens
    score grand k bn mn squared cubed percent
""".split())
# Label nouns: "on day 1 * 2" is day 1's amount times 2, not 1 * 2.
_LABELS = frozenset("""
    day week month year step round page level stage part case row column chapter question problem
    game lap trip item number no grade room floor box station
""".split())
# Never units: "9 because - 18 / -2 = 9" is no "9 becauses".
_NOT_UNITS = frozenset("""
    a an the and or but so then thus hence because since as is are was were be been being it its
    this that these those which who what when where if for to from with without in on at per each
    every all any not no than of by into also again now just only plus
""".split())
# Unit families and the factors between their units: a mismatch by one of them next to such a
# unit is a conversion ("0.5 hours * 2 = 60 minutes", "4 * 5 = 200 cents"), not an error.
_UNIT_FAMILIES = [
    ("second seconds sec secs minute minutes min mins hour hours hr hrs day days week weeks month months "
     "year years", (7, 12, 24, 30, 52, 60, 168, 365, 1440, 3600)),
    ("cent cents penny pennies dollar dollars", (100,)),
    ("inch inches foot feet ft yard yards mile miles", (3, 12, 36, 5280)),
    ("mm cm m meter meters metre metres km kilometer kilometers", (10, 100, 1000)),
    ("g gram grams kg kilogram kilograms ounce ounces oz pound pounds lb lbs ton tons", (16, 1000, 2000)),
    ("ml milliliter milliliters l liter liters litre litres gallon gallons quart quarts pint pints cup cups",
     (8, 16, 1000)),  # not 2 or 4 (pints, quarts): halving slips are far more common
]
_CONVERSIONS = {unit: frozenset(Fraction(f) for f in factors)
                for units, factors in _UNIT_FAMILIES for unit in units.split()}
_OPERAND_START = ("NUM", "LP", "SQRT")


def _unit_word(t: _Tok) -> bool:
    return (t.kind == "WORD" and t.gap and len(t.text) > 1 and t.text.islower()
            and t.text not in _MATH_WORDS and t.text not in _NOT_UNITS)


def _classify_words(toks: list[_Tok]) -> None:
    """Mark ``of`` after a percentage or a fraction as multiplication, and unit words
    between a number and an operator (``12 dollars * 3``) as UNIT (skipped)."""
    n = len(toks)
    for i, t in enumerate(toks):
        if t.kind != "WORD":
            continue
        low = t.text.lower()
        prev = toks[i - 1] if i else None
        nxt = toks[i + 1] if i + 1 < n else None
        if low == "of" and prev is not None and nxt is not None and nxt.kind in _OPERAND_START:
            fraction_before = prev.kind == "RP" or (
                prev.kind == "NUM" and i >= 3 and toks[i - 2].text == "/" and toks[i - 3].kind == "NUM")
            if prev.kind == "PCT" or fraction_before:
                t.kind = "OF"
            continue
        counted = low == "times" and nxt is not None and nxt.kind in ("OP", "EQ")  # 24 times / 3
        if len(low) < 2 or (low in _MATH_WORDS and not counted) or low in _NOT_UNITS or not t.gap \
                or not t.text[0].islower():
            continue  # units are lower-case words ("Total Cost = ..." is a label)
        # a unit phrase: right after a number, then an operator, ")" or "="
        if prev is None or prev.kind not in ("NUM", "PCT"):
            continue
        # then up to two more words ("pine cones tree"), or "of" and a word ("cups of food")
        k = i + 1
        while k < n and k < i + 3 and _unit_word(toks[k]) or (
                k + 1 < n and k == i + 1 and toks[k].text == "of" and _unit_word(toks[k + 1])):
            k += 2 if toks[k].text == "of" else 1
        if k < n and (toks[k].kind in ("RP", "EQ") or (toks[k].kind == "OP" and toks[k].text != "^")):
            for w in range(i, k):
                toks[w].kind = "UNIT"


_RUN_KINDS = frozenset(("NUM", "OP", "LP", "RP", "PCT", "SQRT", "OF", "UNIT"))


# ------------------------------------------------------------- evaluating ---
class _Parser:
    """Precedence climbing over a run of tokens, exact with Fractions."""

    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = [t for t in toks if t.kind != "UNIT"]
        self.i = 0
        self.ops = 0  # operations seen: a bare number is not an equation to check

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Fraction:
        value, _ = self.sum()
        if self.peek() is not None:
            raise _Unclear("trailing tokens")
        return value

    def sum(self) -> tuple[Fraction, bool]:
        value, bare_pct = self.product()
        terms, any_bare_pct = 1, bare_pct
        while (t := self.peek()) is not None and t.kind == "OP" and t.text in "+-":
            self.take()
            self.ops += 1
            rhs, bare_pct = self.product()
            any_bare_pct |= bare_pct
            terms += 1
            value = value + rhs if t.text == "+" else value - rhs
        if terms > 1 and any_bare_pct:
            raise _Unclear("a percentage added to a number")  # 80 + 20%: of what?
        return value, any_bare_pct and terms == 1

    def product(self) -> tuple[Fraction, bool]:
        value, bare_pct = self.unary()
        while (t := self.peek()) is not None:
            implicit = t.kind in ("LP", "SQRT") and self.toks[self.i - 1].kind in ("NUM", "RP") and not t.gap \
                or t.kind == "LP" and self.toks[self.i - 1].kind == "RP" \
                or t.kind == "NUM" and self.toks[self.i - 1].kind == "RP" and not t.gap
            if t.kind == "OF" or (t.kind == "OP" and t.text in "*/"):
                self.take()
                divide = t.text == "/"
            elif implicit:
                divide = False
            else:
                break
            self.ops += 1
            rhs, _ = self.unary()
            bare_pct = False
            if divide:
                if rhs == 0:
                    raise _Unclear("division by zero")
                value /= rhs
            else:
                value *= rhs
        return value, bare_pct

    def unary(self) -> tuple[Fraction, bool]:
        t = self.peek()
        if t is not None and t.kind == "OP" and t.text in "+-":
            if t.text == "+" and self.i > 0:
                raise _Unclear("+ after an operator")  # "1 meat *+1 vegetable"
            self.take()
            value, pct = self.unary()
            return (-value if t.text == "-" else value), pct
        return self.power()

    def power(self) -> tuple[Fraction, bool]:
        base, pct = self.postfix()
        t = self.peek()
        if t is None or t.kind != "OP" or t.text != "^":
            return base, pct
        self.take()
        self.ops += 1
        exponent, _ = self.unary()
        if exponent.denominator != 1 or abs(exponent) > 64 or (base == 0 and exponent < 0):
            raise _Unclear("exponent")
        if max(abs(base.numerator), base.denominator).bit_length() * abs(exponent) > 4096:
            raise _Unclear("too large")
        return base ** int(exponent), False

    def postfix(self) -> tuple[Fraction, bool]:
        value = self.atom()
        t = self.peek()
        if t is not None and t.kind == "PCT":  # not an operation: "the discount is 20% = $4" states no result
            self.take()
            nxt = self.peek()
            if nxt is not None and nxt.kind in ("NUM", "LP"):
                raise _Unclear("17 % 5")  # a modulo, not a percentage
            return value / 100, True
        return value, False

    def atom(self) -> Fraction:
        t = self.peek()
        if t is None:
            raise _Unclear("missing operand")
        self.take()
        if t.kind == "NUM":
            return t.value
        if t.kind == "LP":
            value, _ = self.sum()
            if self.peek() is None or self.take().kind != "RP":
                raise _Unclear("unbalanced")
            return value
        if t.kind == "SQRT":
            self.ops += 1
            inner = self.atom()
            return _exact_sqrt(inner)
        raise _Unclear(f"unexpected {t.text!r}")


def _exact_sqrt(x: Fraction) -> Fraction:
    if x < 0:
        raise _Unclear("negative square root")
    from math import isqrt

    n, d = isqrt(x.numerator), isqrt(x.denominator)
    if n * n != x.numerator or d * d != x.denominator:
        raise _Unclear("irrational square root")
    return Fraction(n, d)


def _evaluate(run: list[_Tok]) -> tuple[Fraction, int]:
    parser = _Parser(run)
    value = parser.parse()
    return value, parser.ops


# ------------------------------------------------------------- rendering ---
_GLYPHS = {"+": "+", "-": "−", "*": "×", "/": "/", "^": "^"}


def _render(run: list[_Tok]) -> str:
    """The expression as written, operators spaced and shown as − × (units left out)."""
    out: list[str] = []
    prev: _Tok | None = None
    for t in run:
        if t.kind == "UNIT":
            continue
        if t.kind == "OP" and t.text != "^":
            if prev is None or prev.kind in ("OP", "LP", "OF", "SQRT"):  # a sign
                out.append((" " if prev is not None and prev.kind in ("OP", "OF") else "") + _GLYPHS[t.text])
            else:
                out.append(f" {_GLYPHS[t.text]} ")
        elif t.kind == "OF":
            out.append(" of ")
        else:
            out.append(t.text)
        prev = t
    text = " ".join("".join(out).split())
    return re.sub(r"([\^√])\((\d+)\)", r"\1\2", text)  # 2^(10) -> 2^10, √(16) -> √16


def _format_value(x: Fraction, decimals: int, commas: bool) -> str:
    """An exact value for people, to at least the stated number of places: 8, 7.00, 2.5, −3,
    3.33… (a non-terminating decimal gets a place more than stated, and an ellipsis)."""
    places = 0
    while (x * 10**places).denominator != 1 and places <= 12:
        places += 1
    exact = (x * 10**places).denominator == 1
    digits = max(places, decimals) if exact else max(2, decimals + 1)
    if abs(x) >= 10**15 and not (exact and digits == 0):
        return f"{float(x):.6g}".replace("-", "−")  # 3.81194e+36: the digits would not help
    scaled = round(abs(x) * 10**digits)
    whole, frac = divmod(scaled, 10**digits)
    text = f"{whole:,}" if commas else str(whole)
    if digits:
        text += "." + str(frac).zfill(digits)
    return ("−" if x < 0 else "") + text + ("" if exact else "…")


# ------------------------------------------------------------- comparing ---
def _close(actual: Fraction, stated: Fraction, decimals: int, approx: bool) -> bool:
    """The stated value is the exact one rounded (either way at a half) or truncated to its own
    written precision; a whole number may also be rounded up ("10/3 = 4 buses")."""
    unit = Fraction(1, 10**decimals)
    diff = abs(actual - stated)
    if diff <= unit / 2 or (decimals == 0 and diff < 1):
        return True
    if int(actual / unit) * unit == stated:  # truncated: 2/3 = 0.66
        return True
    if approx:
        if diff <= unit:
            return True
        if decimals == 0 and stated != 0:  # ≈ 200: rounded to hundreds
            zeros, n = 0, abs(stated.numerator)
            while n % 10 == 0:
                zeros, n = zeros + 1, n // 10
            if diff <= Fraction(10**zeros, 2):
                return True
        return diff <= abs(actual) / 100
    return False


@dataclass
class _Stated:
    value: Fraction
    decimals: int
    text: str
    percent: bool
    approx: bool


def _agrees(actual: Fraction, stated: _Stated, approx: bool) -> bool:
    approx = approx or stated.approx
    if _close(actual, stated.value, stated.decimals, approx):
        return True
    # 30/120 * 100 = 25%  and  1/4 = 25%  both read right
    return stated.percent and _close(actual, stated.value / 100, stated.decimals + 2, approx)


# ------------------------------------------------------------ equations ---
def _trim_parens(run: list[_Tok], left: bool) -> list[_Tok] | None:
    """Drop unmatched outer parentheses ("(3 + 4 = 7)"); None if still unbalanced."""
    run = list(run)
    while True:
        depth, low = 0, 0
        for t in run:
            depth += (t.kind == "LP") - (t.kind == "RP")
            low = min(low, depth)
        if depth == 0 and low == 0:
            return run
        if left and run and run[0].kind == "LP" and depth > 0:
            run = run[1:]
        elif not left and run and run[-1].kind == "RP" and low < 0:
            run = run[:-1]
        else:
            return None


def _continues(toks: list[_Tok], w: int) -> bool:
    """Whether the word at ``w`` may make the arithmetic after it part of a larger expression."""
    low = toks[w].text.lower()
    if low in _MATH_WORDS:
        return True
    if low == "and" and w > 0 and toks[w - 1].kind == "NUM" and w + 2 < len(toks) \
            and toks[w + 1].kind == "NUM" and toks[w + 2].text == "/":
        return True  # 1 and 1/4
    if low in _LINKS and w > 0:
        prev = toks[w - 1]
        return prev.kind in ("NUM", "PCT", "RP", "CMD") or prev.kind == "WORD" and prev.text.lower() in _MATH_WORDS
    return False


def _left_run(toks: list[_Tok], eq: int) -> list[_Tok] | None:
    """The arithmetic just before the ``=`` at ``eq``, or None if it may be part of something else."""
    j = eq
    while j > 0 and toks[j - 1].kind in _RUN_KINDS:
        j -= 1
    run = _trim_parens(toks[j:eq], left=True)
    if not run:
        return None
    start = eq - len(run)
    first = run[0]
    if first.kind == "OP" and first.text in "+-" and len(run) > 1 and not run[1].gap and run[1].kind in _OPERAND_START:
        pass  # a leading sign: -3 + 5
    elif first.kind not in _OPERAND_START:
        return None  # x + 2 = 5: the run starts inside an expression
    if start > 0:
        before = toks[start - 1]
        label = before.text == ":" and start > 1 and toks[start - 2].kind == "WORD"  # Missed:60/4=15
        if not first.gap and before.kind not in ("EQ", "LP") and not label:
            return None  # 3:30, f(3), a_1, 2\frac..., x-2
        if first.kind == "OP" and before.kind == "WORD" and len(before.text) == 1:
            return None  # x -2
        if before.kind == "WORD" and before.text.lower() in _LABELS and first.kind == "NUM":
            return None  # day 1 * 2
        if before.kind in ("NUM", "CMD", "RP", "PCT") or before.kind == "WORD" and _continues(toks, start - 1):
            return None  # 2 1/2, \sin 30 + 1, half of 10 + 2, twice 3 + 4
        if before.kind == "OTHER" and before.text in "|_^'\\¤":
            return None
        two_before = toks[start - 2].kind if start > 1 else None
        if before.text == "," and two_before == "NUM" or before.text == "." and two_before == "OP":
            return None  # "14, 400 / 80" (a broken 14,400), ".8 + . 84"
    return run


def _right_run(toks: list[_Tok], eq: int) -> tuple[list[_Tok], _Tok | None] | None:
    """The arithmetic just after the ``=`` at ``eq`` and the token after it."""
    k = eq + 1
    while k < len(toks) and toks[k].kind in _RUN_KINDS:
        if toks[k].kind == "NUM" and k > eq + 1 and toks[k - 1].kind in ("NUM", "PCT", "UNIT"):
            break  # "= 20 $10 bills", "= 3 1/2": the next number is something else
        if toks[k].kind == "LP" and toks[k].gap and k > eq + 1 and toks[k - 1].kind in ("NUM", "PCT", "RP", "UNIT"):
            break  # "= 14.99 (rounded)"
        k += 1
    raw = toks[eq + 1 : k]
    run = _trim_parens(raw, left=False)
    if not run:
        return None
    after = toks[eq + 1 + len(run)] if eq + 1 + len(run) < len(toks) else None
    first = run[0]
    if first.kind == "OP" and first.text in "+-" and len(run) > 1 and not run[1].gap and run[1].kind == "NUM":
        pass
    elif first.kind not in _OPERAND_START:
        return None
    return run, after


def _bare_number(run: list[_Tok], after: _Tok | None, following: list[str]) -> _Stated | None | bool:
    """A stated number (``9``, ``-3``, ``25%``, ``1,500``); False if it must not be read at all,
    None if the right side is an expression."""
    core = [t for t in run if t.kind != "UNIT"]
    while len(core) > 2 and core[0].kind == "LP" and core[-1].kind == "RP":
        core = core[1:-1]  # (285)
    sign = 1
    if core and core[0].kind == "OP" and core[0].text in "+-":
        sign = -1 if core[0].text == "-" else 1
        core = core[1:]
    percent = False
    if len(core) == 2 and core[1].kind == "PCT":
        percent, core = True, core[:1]
    if len(core) != 1 or core[0].kind != "NUM":
        return None
    num = core[0]
    if run[-1].kind == "UNIT" or after is not None and after.kind == "UNIT":
        return False  # a unit between the number and more arithmetic: unclear
    approx = False
    if after is not None:
        if not after.gap and after.kind in ("WORD", "NUM", "CMD", "SQRT") or (
                not after.gap and after.kind == "OTHER" and after.text in ":_^'\\¤|!"):
            return False  # 12x, 3:30, 3!
        if after.kind == "WORD" and after.text.lower() in _MAGNITUDES:
            return False  # 12 hundred, 4 squared
        if after.kind in ("NUM", "CMD"):
            return False  # "= 3 1/2", "= 2 \cos C", "= 1 \pmod 3"
        if len(following) > 1 and following[0] in _MATH_WORDS | _LINKS and following[1][:1].isdigit():
            return False  # "= 2 times 3", "= 5 of 6"
        if after.kind == "ELL":
            approx = True
    if "mod" in following:
        return False  # 2 + 2 = 1 (mod 3)
    return _Stated(sign * num.value, num.decimals, ("-" if sign < 0 else "") + num.text + ("%" if percent else ""),
                   percent, approx)


def _conversion(run: list[_Tok], after: _Tok | None, actual: Fraction, stated: Fraction) -> bool:
    """Whether ``actual`` and ``stated`` differ by a factor between units written next to them."""
    if actual == 0 or stated == 0:
        return False
    ratio = max(abs(actual / stated), abs(stated / actual))
    words = {t.text.lower() for t in run if t.kind == "UNIT"}
    stated_unit = after.text.lower() if after is not None and after.kind in ("WORD", "UNIT") else None
    if stated_unit in words:
        return False  # dollars on both sides: nothing was converted
    return any(ratio in _CONVERSIONS.get(w, ()) for w in words | {stated_unit})


_ENDS = frozenset((_BOUNDARY, ",", ".", ";", ":", "!", "?"))


def _range_like(run: list[_Tok]) -> bool:
    """``5-10``: a hyphen with no space on either side between two ascending numbers (a range, a
    phone number) or in a date (``2023-10-05``); ``100-25`` is a subtraction."""
    hyphens = [j for j, t in enumerate(run) if 0 < j < len(run) - 1 and t.kind == "OP" and t.text == "-"
               and not t.gap and not run[j + 1].gap and run[j - 1].kind == "NUM" and run[j + 1].kind == "NUM"]
    if any(j + 2 in hyphens for j in hyphens):
        return True  # 2023-10-05: a date or a code
    return any(run[j - 1].value < run[j + 1].value or run[j + 1].text.startswith("0") for j in hyphens)


def _check_tokens(toks: list[_Tok]) -> list[WrongEquation]:
    found: list[WrongEquation] = []
    for i, tok in enumerate(toks):
        if tok.kind != "EQ":
            continue
        left = _left_run(toks, i)
        right = _right_run(toks, i)
        if left is None or right is None:
            continue
        run, after = right
        compact = not tok.gap and not run[0].gap  # 20-12=8: compact throughout is arithmetic
        if not compact and (_range_like(left) or _range_like(run)):
            continue
        try:
            actual, ops = _evaluate(left)
        except _Unclear:
            continue
        if ops == 0:
            continue  # "x = 5", "2 hours = 120 minutes"
        end = i + 1 + len(run)
        following = [t.text.lower().lstrip("\\") for t in toks[end : end + 3]]
        if len(following) > 1 and following[0] == "," and re.fullmatch(r"\d{3}", following[1]):
            continue  # "= 729, 000": a number broken at its thousands separator
        stated = _bare_number(run, after, following)
        if stated is False:
            continue
        if stated is None:
            if after is not None and after.kind not in ("EQ", "ELL") and not (
                    after.kind == "OTHER" and after.text in _ENDS):
                continue  # 2^2 + 3^2 - 12 \cos C: the right side goes on
            wrong = _chain_mismatch(left, run, actual, tok.approx)
            if wrong is not None:
                found.append(wrong)
            continue
        if _agrees(actual, stated, tok.approx):
            continue
        if _conversion(left, after, actual, stated.value):
            continue  # 0.5 hours * 2 = 60 minutes
        commas = "," in stated.text
        found.append(WrongEquation(_render(left), _minus(stated.text),
                                   _format_value(actual, stated.decimals, commas)))
    return found


def _minus(text: str) -> str:
    return text.replace("-", "−")


def _chain_mismatch(left: list[_Tok], run: list[_Tok], actual: Fraction, approx: bool) -> WrongEquation | None:
    """``a = b`` where both sides are expressions.  The chain holds if they have the same value;
    if the right side starts with the left side's value the writer moved on (``2 + 3 = 5 + 1 = 6``);
    otherwise the equation is wrong (``3 + 4 = 8 × 2``)."""
    try:
        value, _ = _evaluate(run)
    except _Unclear:
        return None
    if value == actual or approx and _close(actual, value, 0, True):
        return None
    core = [t for t in run if t.kind != "UNIT"]
    if core[0].kind == "NUM" and _close(actual, core[0].value, core[0].decimals, approx):
        return None
    if any(t.kind == "NUM" and t.decimals for t in left + run) and abs(value - actual) <= abs(actual) / 100:
        return None  # 1/3 × 18 = 0.33 × 18: rounded on the way
    return WrongEquation(_render(left), _render(run), _format_value(actual, 0, False))


def _check_annotation(body: str) -> list[WrongEquation]:
    """GSM8K's calculator annotation ``48/2=24`` (the body of ``<<48/2=24>>``)."""
    if body.count("=") != 1:
        return []
    return _check_tokens(_prepared(body))


def _prepared(text: str) -> list[_Tok]:
    toks = _tokenise(_normalise(text))
    _classify_words(toks)
    return toks


def check_step(text: str) -> list[WrongEquation]:
    """The equations in ``text`` whose stated result is wrong (empty: none found wrong)."""
    found: list[WrongEquation] = []
    for m in _ANNOTATION.finditer(text):
        found += _check_annotation(m.group(1))
    plain = _ANNOTATION.sub(" ", text)
    found += _check_tokens(_prepared(plain))
    unique: dict[str, WrongEquation] = {}
    for wrong in found:
        unique.setdefault(wrong.describe(), wrong)
    return list(unique.values())


@functools.lru_cache(maxsize=4096)
def explain_step(text: str) -> str | None:
    """What is wrong with the arithmetic of ``text`` in one line, or None.  Cached: the search
    asks for each scored step right after scoring it."""
    wrong = check_step(text)
    return "; ".join(w.describe() for w in wrong) if wrong else None


# ------------------------------------------------------- reward models ---
class ArithmeticGuard:
    """Any reward model with the exact arithmetic check on top: a step with a wrong equation
    scores at most :data:`FLAGGED_SCORE` whatever the inner model says."""

    def __init__(self, inner: RewardModel) -> None:
        self.inner = inner

    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        scores = self.inner.score(question, steps)
        return [min(s, FLAGGED_SCORE) if explain_step(t) else s for s, t in zip(scores, steps)]

    def score_last(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        scores = self.inner.score_last(question, paths)
        return [min(s, FLAGGED_SCORE) if p and explain_step(p[-1]) else s for s, p in zip(scores, paths)]

    def explain(self, step: str) -> str | None:
        """Why ``step`` was marked wrong ('20 − 12 = 8, not 9'), or None."""
        return explain_step(step)

    def fits(self, question: str, steps: Sequence[str]) -> bool:
        """Whether the inner model's input fits its context (core.prm_window)."""
        fits = getattr(self.inner, "fits", None)
        return fits is None or fits(question, steps)

    @property
    def wants_logprobs(self) -> bool:
        return bool(getattr(self.inner, "wants_logprobs", False))

    @property
    def logprobs_only(self) -> bool:
        return bool(getattr(self.inner, "logprobs_only", False))

    @property
    def backbone(self) -> object:
        return getattr(self.inner, "backbone", None)

    def reads_tokens_of(self, engine: object, system_prompt: str, delimiter: str) -> bool:
        """Whether the inner model scores a search's token paths directly (learned heads)."""
        reads = getattr(self.inner, "reads_tokens_of", None)
        return bool(reads is not None and reads(engine, system_prompt, delimiter))

    def score_tokens(self, paths: Sequence[Sequence[int]], step_starts: Sequence[int],
                     texts: Sequence[str], logprobs: Sequence[Sequence[float] | None] | None = None) -> list[float]:
        scores = self.inner.score_tokens(paths, step_starts, texts, logprobs)
        return [min(s, FLAGGED_SCORE) if explain_step(t) else s for s, t in zip(scores, texts)]


class ArithmeticPRM:
    """The check alone, no model: 1.0 unless the step writes a wrong equation, then 0.0."""

    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        return [0.0 if explain_step(s) else 1.0 for s in steps]

    def score_last(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        return [0.0 if p and explain_step(p[-1]) else 1.0 for p in paths]

    def explain(self, step: str) -> str | None:
        return explain_step(step)


register_prm_kind(PRMKind("arith", lambda engine=None, head=None: ArithmeticPRM(),
                          "no model: exact arithmetic check only (1 unless a written equation is wrong)",
                          needs_model=False))

"""LaTeX-ish math made readable in a terminal: ``\\frac{1}{2}`` → ``1/2``,
``x^2`` → ``x²``, ``\\sqrt{x}`` → ``√(x)``, ``\\boxed{5}`` → ``【5】`` …

Only math is touched: ``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]`` spans and
bare ``\\boxed{…}`` (models write it outside math too).  Display math goes on
its own line.  No Textual imports here.
"""

from __future__ import annotations

import re

from specsearch.core.text import brace_group

SYMBOLS = {
    "times": "×", "cdot": "·", "div": "÷", "pm": "±", "mp": "∓", "le": "≤", "leq": "≤", "ge": "≥",
    "geq": "≥", "ne": "≠", "neq": "≠", "approx": "≈", "equiv": "≡", "sim": "∼", "infty": "∞",
    "to": "→", "rightarrow": "→", "Rightarrow": "⇒", "implies": "⇒", "leftarrow": "←", "iff": "⇔",
    "in": "∈", "notin": "∉", "subset": "⊂", "subseteq": "⊆", "cup": "∪", "cap": "∩", "emptyset": "∅",
    "forall": "∀", "exists": "∃", "neg": "¬", "land": "∧", "lor": "∨", "angle": "∠", "circ": "∘",
    "degree": "°", "perp": "⊥", "parallel": "∥", "sum": "∑", "prod": "∏", "int": "∫", "partial": "∂",
    "nabla": "∇", "ldots": "…", "cdots": "⋯", "dots": "…", "quad": "  ", "qquad": "    ",
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ",
    "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "φ", "varphi": "φ",
    "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ",
    "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω", "%": "%", "$": "$", "{": "{",
    "}": "}", ",": " ", ";": " ", "!": "", " ": " ", "left": "", "right": "", "displaystyle": "",
    "dfrac": "", "tfrac": "",
}
SUPERSCRIPT = str.maketrans("0123456789+-=()niabcdxyz", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱᵃᵇᶜᵈˣʸᶻ")
SUBSCRIPT = str.maketrans("0123456789+-=()aeioxnmk", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑᵢₒₓₙₘₖ")

_MATH_RE = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\\w])\$(?!\s)([^$\n]+?)(?<![\s\\])\$", re.S)


def _group(text: str, i: int) -> tuple[str, int]:
    """The brace group (or single character) starting at ``text[i]``; returns (content, end)."""
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return "", i
    if text[i] != "{":
        if text[i] == "\\":
            m = re.match(r"\\[A-Za-z]+", text[i:])
            if m:
                return m.group(0), i + m.end()
        return text[i], i + 1
    group = brace_group(text, i)
    return group if group is not None else (text[i + 1 :], len(text))  # unclosed: the rest


def _atom(s: str) -> str:
    """Parenthesise a fraction part unless it is a single number or name."""
    return s if re.fullmatch(r"[\w.′]+|\(.*\)|√\(.*\)", s) else f"({s})"


def _script(content: str, table: dict[int, int], mark: str) -> str:
    converted = content.translate(table)
    if all(c != o or c in " " for c, o in zip(converted, content)) and content and len(content) <= 6:
        return converted
    return f"{mark}({content})" if len(content) > 1 else f"{mark}{content}"


def convert_math(tex: str) -> str:
    """One math span, LaTeX → readable Unicode."""
    out: list[str] = []
    i = 0
    while i < len(tex):
        c = tex[i]
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", tex[i:], re.S)
            if m is None:  # a lone trailing backslash
                out.append(c)
                break
            name, i = m.group(1), i + m.end()
            if name in ("frac", "dfrac", "tfrac"):
                num, i = _group(tex, i)
                den, i = _group(tex, i)
                out.append(f"{_atom(convert_math(num))}/{_atom(convert_math(den))}")
            elif name == "sqrt":
                index = ""
                if i < len(tex) and tex[i] == "[":
                    end = tex.find("]", i)
                    index, i = tex[i + 1 : end], end + 1
                body, i = _group(tex, i)
                root = {"3": "∛", "4": "∜"}.get(index, (index.translate(SUPERSCRIPT) if index else "") + "√")
                out.append(f"{root}({convert_math(body)})")
            elif name in ("boxed", "fbox"):
                body, i = _group(tex, i)
                out.append(f"【{convert_math(body)}】")
            elif name in ("text", "textbf", "mathrm", "mathbf", "mathit", "operatorname", "textit", "mbox"):
                body, i = _group(tex, i)
                out.append(body if name.startswith("text") or name == "mbox" else convert_math(body))
            elif name in SYMBOLS:
                out.append(SYMBOLS[name])
            elif name in ("sin", "cos", "tan", "log", "ln", "exp", "lim", "max", "min", "gcd", "mod", "det"):
                out.append(name if name != "mod" else " mod ")
            else:
                out.append(name)
        elif c in "^_":
            body, i = _group(tex, i + 1)
            body = convert_math(body)
            out.append(_script(body, SUPERSCRIPT if c == "^" else SUBSCRIPT, c))
        elif c in "{}":
            i += 1
        elif c == "*":
            out.append("·")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def readable(text: str, markdown: bool = True) -> str:
    """Text with its math spans converted; everything else untouched.  ``markdown``:
    the result is Markdown (display math as an indented block, ``*`` and ``_`` escaped)."""

    def repl(m: re.Match[str]) -> str:
        display = m.group(1) is not None or m.group(2) is not None
        tex = next(g for g in m.groups() if g is not None)
        body = convert_math(tex).strip()
        if not markdown:
            return body
        # keep Markdown from reading math as emphasis or escapes
        body = body.replace("*", "\\*").replace("_", "\\_")
        return f"\n\n    {body}\n\n" if display else body

    text = _MATH_RE.sub(repl, text)
    # \boxed{...} outside math delimiters
    out, i = [], 0
    for m in re.finditer(r"\\(?:boxed|fbox)\s*(?=\{)", text):
        if m.start() < i:
            continue
        body, end = _group(text, m.end())
        out.append(text[i : m.start()] + f"【{convert_math(body)}】")
        i = end
    return "".join(out) + text[i:]

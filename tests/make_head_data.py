"""Training data for the shipped PRM head, made from GSM8K *training* problems.

    python tests/make_head_data.py ../shared/data/gsm8k_train.jsonl synth.json 700

Writes ProcessBench-format items (``problem, steps, label``) from reference
solutions (one line a step, calculator annotations removed, a final
"The answer is \\boxed{…}." step): about 45 % unchanged (label -1), the rest
with one equation step made wrong and labelled as the first wrong step -- an
arithmetic slip (result changed), a wrong operation (operator changed, result
recomputed) or a wrong operand (a number from the question swapped in, result
recomputed); the last two are reasoning errors with correct arithmetic.
Deterministic for a given seed.  Not a test module (no test_ prefix).
"""
from __future__ import annotations

import json
import random
import re
import sys
from fractions import Fraction

ANNOTATION = re.compile(r"<<([^>]*)>>")
EQUATION = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*([+\-*/x×])\s*(\d[\d,]*(?:\.\d+)?)\s*=\s*\$?(\d[\d,]*(?:\.\d+)?)")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "x": lambda a, b: a * b,
       "×": lambda a, b: a * b, "/": lambda a, b: a / b if b else None}


def number(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def written(value: Fraction | None) -> str | None:
    if value is None:
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.2f}".rstrip("0").rstrip(".")


def reference_steps(solution: str, answer: str) -> list[str]:
    lines = [ANNOTATION.sub("", line).strip() for line in solution.split("\n") if line.strip()]
    return lines + [f"The answer is \\boxed{{{answer}}}."]


def corrupt(step: str, kind: str, rng: random.Random, question_numbers: list[Fraction]) -> str | None:
    """``step`` with one of its equations made wrong, or None when that kind cannot apply."""
    matches = list(EQUATION.finditer(step))
    if not matches:
        return None
    m = rng.choice(matches)
    a, op, b, c = number(m.group(1)), m.group(2), number(m.group(3)), number(m.group(4))
    if kind == "arith":  # the stated result is off
        delta = rng.choice([1, 2, 10, -1, -2, -10])
        new_c = c + delta if c + delta >= 0 else c + abs(delta)
        if rng.random() < 0.3:
            new_c = c * 10 if c else c + 3
        replacement = f"{m.group(1)} {op} {m.group(3)} = {written(new_c)}"
    elif kind == "op":  # the wrong operation, computed correctly
        other = rng.choice([o for o in "+-*/" if o != {"x": "*", "×": "*"}.get(op, op)])
        value = OPS[other](a, b)
        if value is None or value < 0 or value == c:
            return None
        replacement = f"{m.group(1)} {other} {m.group(3)} = {written(value)}"
    else:  # a wrong operand from the question, computed correctly
        candidates = [q for q in question_numbers if q not in (a, b)]
        if not candidates:
            return None
        q = rng.choice(candidates)
        value = OPS[op](q, b) if rng.random() < 0.5 else OPS[op](a, q)
        if value is None or value < 0 or value == c:
            return None
        if value == OPS[op](q, b):
            replacement = f"{written(q)} {op} {m.group(3)} = {written(value)}"
        else:
            replacement = f"{m.group(1)} {op} {written(q)} = {written(value)}"
    return step[: m.start()] + replacement + step[m.end():]


def make_items(rows: list[dict], n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = list(rows)
    rng.shuffle(rows)
    items: list[dict] = []
    for r in rows:
        if len(items) >= n:
            break
        steps = reference_steps(r["solution"], r["answer"])
        question_numbers = [number(x) for x in NUMBER.findall(r["question"])]
        if rng.random() < 0.45:
            items.append({"id": r["id"], "problem": r["question"], "steps": steps, "label": -1,
                          "final_answer_correct": True})
            continue
        with_equation = [i for i, s in enumerate(steps) if EQUATION.search(s)]
        if not with_equation:
            continue
        k = rng.choice(with_equation)
        kind = rng.choice(["arith", "op", "operand", "operand"])
        bad = corrupt(steps[k], kind, rng, question_numbers)
        if bad is None:
            continue
        items.append({"id": r["id"], "problem": r["question"], "steps": steps[:k] + [bad] + steps[k + 1:],
                      "label": k, "kind": kind, "final_answer_correct": False})
    return items


def main(source: str, out: str, n: int) -> None:
    with open(source, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    items = make_items(rows, n)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(items, f)
    print(f"{len(items)} items, {sum(it['label'] < 0 for it in items)} without an error")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

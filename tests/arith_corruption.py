"""Arithmetic slips of the kind small models make, built from GSM8K reference solutions, and a
small measuring tool for the exact arithmetic check (core.arithmetic).

GSM8K solutions carry calculator annotations: ``48/2 = <<48/2=24>>24 clips``.  :func:`plain_form`
turns a line into what a model would write (``48/2 = 24 clips``); :func:`corrupt` does the same
with one result changed (off by one, off by ten, ten times, one digit changed).

    python tests/arith_corruption.py GSM8K.jsonl [PROCESSBENCH.json ...]

prints the check's false alarms on the reference lines and its catch rate on the corrupted ones,
then false alarms on ProcessBench's correct steps and the first wrong steps it catches.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass

ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>(\$?)(-?[\d,]*\.?\d+)")
KINDS = ("+1", "-1", "+10", "x10", "digit")


def plain_form(line: str, changed: int | None = None, new: str = "") -> str:
    """``line`` without its annotations, each as ``expr = result``; annotation ``changed`` shows ``new``."""
    out, pos = [], 0
    for k, m in enumerate(ANNOTATION.finditer(line)):
        before = line[pos : m.start()]
        expr, dollar, written = m.group(1), m.group(3), m.group(4)
        shown = new if k == changed else written
        if re.search(r"=\s*\$?\s*$", before):  # "48/2 = <<48/2=24>>24": the equation is already written
            out += [before, dollar, shown]
        else:  # "He gets <<5*3=15>>15": write it
            out += [before, f"{expr} = ", dollar, shown]
        pos = m.end()
    out.append(line[pos:])
    return "".join(out)


def changed_number(text: str, kind: str, rng: random.Random) -> str:
    value = float(text.replace(",", ""))
    decimals = len(text.split(".")[1]) if "." in text else 0
    if kind == "digit":
        places = [i for i, c in enumerate(text) if c.isdigit()]
        i = rng.choice(places)
        digit = rng.choice([d for d in "0123456789" if d != text[i] and not (i == 0 and d == "0")])
        return text[:i] + digit + text[i + 1 :]
    value = {"+1": value + 1, "-1": value - 1, "+10": value + 10, "x10": value * 10}[kind]
    return f"{value:.{decimals}f}" if decimals else str(int(value))


@dataclass(frozen=True)
class Corrupted:
    kind: str
    text: str


def corrupt(line: str, rng: random.Random) -> Corrupted | None:
    """``line`` in plain form with one annotated result changed; None if it has no annotation."""
    found = list(ANNOTATION.finditer(line))
    if not found:
        return None
    k = rng.randrange(len(found))
    kind = rng.choice(KINDS)
    written = found[k].group(4)
    new = changed_number(written, kind, rng)
    if new.replace(",", "") == written.replace(",", ""):
        return None
    return Corrupted(kind, plain_form(line, k, new))


def annotated_lines(solutions: list[str]) -> list[str]:
    return [line for sol in solutions for line in sol.split("\n") if ANNOTATION.search(line)]


def _main(argv: list[str]) -> None:
    from specsearch.core.arithmetic import check_step

    rng = random.Random(0)
    lines = annotated_lines([json.loads(row)["solution"] for row in open(argv[0], encoding="utf-8")])
    flagged = sum(bool(check_step(plain_form(line))) for line in lines)
    print(f"reference lines {len(lines)}: flagged {flagged} ({flagged / len(lines):.2%})")
    total, caught = Counter(), Counter()
    for line in lines:
        bad = corrupt(line, rng)
        if bad is not None:
            total[bad.kind] += 1
            caught[bad.kind] += bool(check_step(bad.text))
    n, c = sum(total.values()), sum(caught.values())
    print(f"corrupted lines {n}: caught {c} ({c / n:.1%}); " + ", ".join(f"{k} {caught[k]}/{total[k]}" for k in KINDS))
    for path in argv[1:]:
        items = json.load(open(path, encoding="utf-8"))
        right = [s for it in items for i, s in enumerate(it["steps"]) if it["label"] < 0 or i < it["label"]]
        first_wrong = [it["steps"][it["label"]] for it in items if it["label"] >= 0]
        alarms = sum(bool(check_step(s)) for s in right)
        hits = sum(bool(check_step(s)) for s in first_wrong)
        print(f"{path}: correct steps {len(right)}, false alarms {alarms} ({alarms / len(right):.2%}); "
              f"first wrong steps {len(first_wrong)}, caught {hits} ({hits / len(first_wrong):.1%})")


if __name__ == "__main__":
    _main(sys.argv[1:])

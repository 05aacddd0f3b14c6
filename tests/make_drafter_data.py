"""Step-judge training data from the drafter's own solutions to GSM8K *training* problems.

    specsearch bench --dataset train.jsonl --methods small --beam-width 1 --children 1 --out GEN ...
    python tests/make_drafter_data.py train.jsonl GEN [GEN ...] --out drafter.json

A search judges the small model's thoughts, so its judge should learn from them
rather than from other models' solutions (ProcessBench) or edited references.
``bench --methods small`` writes one sampled solution per problem (thoughts as
the drafter writes them in a search); this script labels each solution in
ProcessBench's format (``problem, steps, label``) against the problem's
reference solution:

* final answer right: every step good (label -1);
* otherwise the first wrong step is the first thought that writes a number
  found neither in the question, nor among the reference's numbers (its
  calculator results and their percent forms), nor in an earlier thought --
  a result the reference never reaches.  Operands may also be small everyday
  constants (2 for "half", 12, 60, 100, ...).  A wrong solution with no such
  thought is left out: its error is not located.

The labels are heuristic (a valid path through other intermediate values ends
wrong only if its answer is wrong, and then the first detour is blamed), so
check what a head learns on human labels too (``prm eval --data gsm8k``).
Not a test module (no test_ prefix).
"""
from __future__ import annotations

import argparse
import json
import re
from fractions import Fraction
from pathlib import Path

from specsearch.core.text import jsonl_lines

NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?!\w)")  # not the 6 of "6c"
LIST_MARKER = re.compile(r"(?m)^\s*(?:Step\s*)?\d+[.):]\s")
# Operands a correct step may bring in without the question or reference writing them.
EVERYDAY = {Fraction(v) for v in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 24, 30, 52, 60, 100, 365, 1000)}


def numbers(text: str) -> list[tuple[Fraction, bool]]:
    """Each number in ``text`` with whether it is a stated result (right after "=")."""
    text = LIST_MARKER.sub(" ", text)
    out = []
    for m in NUMBER.finditer(text):
        try:
            value = Fraction(m.group().replace(",", ""))
        except (ValueError, ZeroDivisionError):
            continue
        before = text[max(0, m.start() - 4): m.start()].replace("$", "").replace("\\(", "").rstrip()
        out.append((value, before.endswith("=")))
    return out


def close(a: Fraction, known: set[Fraction]) -> bool:
    """``a`` equals a known value, allowing the rounding a written decimal carries."""
    if a in known:
        return True
    return any(abs(a - k) <= Fraction(1, 200) * max(1, abs(k)) and a.denominator != 1 for k in known)


def reference_values(question: str, solution: str) -> set[Fraction]:
    values = {v for v, _ in numbers(question)} | {v for v, _ in numbers(solution)}
    return values | {v / 100 for v in values} | {v * 100 for v in values} | {-v for v in values}


def first_wrong(question: str, solution: str, steps: list[str]) -> int | None:
    """Index of the first thought writing a number the reference never reaches, or None."""
    known = reference_values(question, solution)
    for i, step in enumerate(steps):
        for value, is_result in numbers(step):
            if close(value, known) or (not is_result and value in EVERYDAY):
                continue
            return i
        known |= {v for v, _ in numbers(step)}
    return None


def label_run(problem: dict, tree: dict, correct: bool) -> dict | None:
    """A ProcessBench-format item for one saved search, or None when its error is not located."""
    by_id = {n["id"]: n for n in tree["nodes"]}
    path, node = [], by_id.get(tree.get("best_leaf_id"))
    while node is not None:
        path.append(node["text"])
        node = by_id.get(node["parent_id"])
    steps = [s for s in reversed(path) if s.strip()]
    if not steps:
        return None
    if correct:
        label = -1
    else:
        label = first_wrong(problem["question"], problem["solution"], steps)
        if label is None:
            return None
    return {"id": problem["id"], "problem": problem["question"], "steps": steps, "label": label,
            "final_answer_correct": correct}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="the JSONL the bench ran on (question, solution, answer, id)")
    ap.add_argument("runs", nargs="+", help="bench output folders of --methods small")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    problems = {}
    with open(args.source, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                problems[row["id"]] = row
    items, unlocated = [], 0
    for run in map(Path, args.runs):
        for _, line in jsonl_lines((run / "results.jsonl").read_text(encoding="utf-8")):
            rec = json.loads(line)
            tree_file = run / "trees" / f"{rec['id']}__{rec['method']}.json"
            if rec["id"] not in problems or not tree_file.exists():
                continue
            item = label_run(problems[rec["id"]], json.loads(tree_file.read_text(encoding="utf-8")), rec["correct"])
            if item is None:
                unlocated += not rec["correct"]
                continue
            items.append(item)
    Path(args.out).write_text(json.dumps(items), encoding="utf-8")
    wrong = sum(it["label"] >= 0 for it in items)
    print(f"{len(items)} items: {len(items) - wrong} right, {wrong} with a located first wrong step; "
          f"{unlocated} wrong solutions left out (error not located)")


if __name__ == "__main__":
    main()

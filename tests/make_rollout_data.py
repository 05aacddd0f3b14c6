"""Step-judge training data labelled by rollouts (Math-Shepherd style), from GSM8K *training* problems.

    python tests/make_rollout_data.py ../shared/data/gsm8k_train.jsonl S.gguf L.gguf --start 6000 --n 150 \
        --out rollout.json

For each problem the drafter (S) writes one solution exactly as a search drafts
it (method ``small``, one beam, one child, temperature 0.7), and the large model
(L) then finishes the solution greedily from the question alone and from after
each of its thoughts.  v_i says whether L, continuing after thought i (v_0: from
the question), reaches the reference answer.  An item is written in
ProcessBench's format (``problem, steps, label``):

* the drafter's own answer right: every thought good (label -1);
* otherwise the first wrong thought is the one after the last prefix from which
  L still reached the answer (v_{i-1} = 1, and v_j = 0 for every j >= i): the
  thought that lost a solvable position -- what a search needs a judge to see;
* a solution from whose every prefix L fails is left out (nothing locates its error).

Unlike the labels of make_drafter_data.py, these can blame a thought that
writes no number (a wrong plan).  Each item also keeps the values (``values``).
Not a test module (no test_ prefix).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from specsearch.core.answers import grade
from specsearch.core.api import ModelSpec, Solver
from specsearch.core.config import SearchConfig
from specsearch.core.datasets import load_dataset
from specsearch.core.search import build_prompt


def label_from_values(values: list[int], n_steps: int, right: bool) -> int | None:
    """-1 when the drafter's answer is right; else the index of the first wrong thought, or None.
    ``values[i]``: whether L reached the answer from after the first i thoughts."""
    if right:
        return -1
    last_good = max((i for i, v in enumerate(values) if v == 1), default=None)
    # Thought ``last_good`` (0-based) follows the last prefix L could still finish right.
    return last_good if last_good is not None and last_good < n_steps else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train")
    ap.add_argument("small")
    ap.add_argument("large")
    ap.add_argument("--start", type=int, default=6000)
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--max-tokens", type=int, default=384, help="rollout length")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    problems = load_dataset(args.train)[args.start: args.start + args.n]
    config = SearchConfig(method="small", beam_width=1, children=1, temperature=0.7, max_depth=8,
                          max_step_tokens=128)
    small = ModelSpec(args.small, n_threads=args.threads, n_ctx=4096)
    large = ModelSpec(args.large, n_threads=args.threads, n_ctx=8192)
    out_path = Path(args.out)
    items = json.loads(out_path.read_text()) if out_path.exists() else []
    done = {it["id"] for it in items}
    with Solver(small, large, small, prm_kind="arith") as solver:
        models = solver.models("ar")
        writer = solver.engine("large")
        t0 = time.time()
        for k, p in enumerate(problems):
            if p.id in done:
                continue
            result = solver.solve(p.question, replace(config, seed=args.start + k))
            steps = [n.text for n in result.path(result.best_leaf_id)]
            if not steps:
                continue
            right = grade(result.solution, p.answer)
            finished = result.answer is not None
            # Prefixes to roll out from: the question, then after each thought (not after a final one).
            prefixes = [steps[:i] for i in range(len(steps) + (0 if finished else 1))]
            prompts = [build_prompt(models, p.question, config, pre) for pre in prefixes]
            gens = writer.generate(prompts, 1, max_tokens=args.max_tokens).generations
            values = [int(grade(g.text, p.answer)) for g in gens]
            if finished:
                values.append(int(right))
            label = label_from_values(values, len(steps), right)
            if label is not None:
                items.append({"id": p.id, "problem": p.question, "steps": steps, "label": label,
                              "final_answer_correct": right, "values": values})
                tmp = out_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(items))
                tmp.replace(out_path)
            print(f"{k + 1}/{len(problems)} {p.id} right={right} values={values} label={label} "
                  f"items={len(items)} {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The cost model's figures in bench records, summary.json and the table (core.bench)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specsearch.core.bench import format_table, run_benchmark
from specsearch.core.datasets import Problem
from specsearch.core.tree import SearchResult, SearchStats, ThoughtNode

PROBLEMS = [Problem(id="p0", question="1+1?", answer="2"), Problem(id="p1", question="2+2?", answer="4")]

# (problem, method) -> wall seconds, predicted ar seconds, ceiling seconds
TIMES = {
    ("p0", "ar"): (4.0, 4.2, None),
    ("p1", "ar"): (6.0, 5.8, None),
    ("p0", "specsearch"): (2.0, 3.0, 1.0),
    ("p1", "specsearch"): (3.0, 7.0, 1.5),
    ("p0", "small"): (1.0, None, None),  # no large-model thought: no prediction
    ("p1", "small"): (1.0, None, None),
}


# (problem, method) -> tokens of its thoughts: (kept, rejected drafts, trial drafts)
TOKENS = {("p0", "ar"): (40, 0, 0), ("p1", "ar"): (60, 0, 0),
          ("p0", "specsearch"): (25, 30, 0), ("p1", "specsearch"): (25, 0, 12)}


def thoughts(kept: int, rejected: int, trial: int) -> list[ThoughtNode]:
    nodes = [ThoughtNode(0, None, 1, "t", kept, "large", "generated")]
    if rejected:
        nodes.append(ThoughtNode(1, None, 1, "t", rejected, "small", "rejected"))
    if trial:
        nodes.append(ThoughtNode(2, None, 1, "t", trial, "small", "accepted", trial=True))
    return nodes


def solve(problem: Problem, method: str) -> SearchResult:
    wall, predicted_ar, ceiling = TIMES[(problem.id, method)]
    stats = SearchStats(wall_seconds=wall, predicted_ar_seconds=predicted_ar, ceiling_seconds=ceiling)
    nodes = thoughts(*TOKENS.get((problem.id, method), (0, 0, 0)))
    return SearchResult(problem.question, method, {"method": method}, nodes, [], None, r"\boxed{2}", "2", stats)


def test_records_summary_and_table(tmp_path: Path) -> None:
    summary = run_benchmark(PROBLEMS, ["ar", "specsearch", "small"], solve, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    spec0 = next(r for r in records if (r["id"], r["method"]) == ("p0", "specsearch"))
    assert (spec0["predicted_ar_s"], spec0["ceiling_s"], spec0["predicted_speedup"]) == (3.0, 1.0, 1.5)
    # kept tokens: neither a rejected draft nor a trial's draft is a thought the search kept
    assert {(r["id"], r["method"]): r["kept_tokens"] for r in records if r["method"] != "small"} == \
        {k: v[0] for k, v in TOKENS.items()}

    spec = summary["specsearch"]
    assert spec.speedup_vs_ar == pytest.approx(10.0 / 5.0)  # measured
    assert spec.predicted_speedup == pytest.approx(10.0 / 5.0)  # (3 + 7) / (2 + 3)
    assert spec.ceiling_speedup == pytest.approx(10.0 / 2.5)
    assert spec.captured_fraction == pytest.approx(2.0 / 4.0)
    # per kept token: ar 10 s for 100 tokens, specsearch 5 s for 50: twice as fast only by a tree half as long
    assert spec.speedup_per_token == pytest.approx((10.0 / 100) / (5.0 / 50))
    assert summary["small"].speedup_per_token is None  # no kept tokens recorded
    assert summary["ar"].predicted_speedup == pytest.approx(10.0 / 10.0)
    assert summary["ar"].ceiling_speedup is None and summary["ar"].captured_fraction is None
    assert summary["small"].predicted_speedup is None

    saved = json.loads((tmp_path / "summary.json").read_text())
    assert {k: saved["specsearch"][k] for k in ("predicted_speedup", "ceiling_speedup", "captured_fraction")} == \
        pytest.approx({"predicted_speedup": 2.0, "ceiling_speedup": 4.0, "captured_fraction": 0.5})

    lines = format_table(summary).splitlines()
    for heading in ("per token", "predicted", "ceiling", "captured"):
        assert heading in lines[0]
    row = next(line for line in lines if line.startswith("specsearch")).split()
    assert row[row.index("2.00x") + 1:row.index("2.00x") + 5] == ["1.00x", "2.00x", "4.00x", "50.0%"]
    assert saved["specsearch"]["speedup_per_token"] == pytest.approx(1.0)


def test_records_keep_each_models_time_and_a_served_models_requests(tmp_path: Path) -> None:
    served = {"requests": 6, "seconds": 9.0, "timed_requests": 6, "server_seconds": 7.5, "network_queue_seconds": 1.5}

    def solve_served(problem: Problem, method: str) -> SearchResult:
        stats = SearchStats(wall_seconds=12.0, model_seconds={"small": 2.0, "large": 9.0}, remote={"large": served})
        return SearchResult(problem.question, method, {"method": method}, [], [], None, "", None, stats)

    run_benchmark(PROBLEMS[:1], ["specsearch"], solve_served, tmp_path)
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])
    assert record["model_seconds"] == {"small": 2.0, "large": 9.0}
    assert record["remote"] == {"large": served}

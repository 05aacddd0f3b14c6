"""Method variants (METHOD@FIELD=VALUE) in a benchmark, and curve.png."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specsearch.core.bench import run_benchmark
from specsearch.core.bench_variants import curve_series, expand_sweep, parse_variant
from specsearch.core.config import SearchConfig
from specsearch.core.datasets import Problem
from specsearch.core.tree import SearchResult, SearchStats

PROBLEMS = [Problem(id=f"p{i}", question=f"{i}+1?", answer=str(i + 1)) for i in range(4)]


class TestParseVariant:
    def test_plain_method_has_no_override(self):
        v = parse_variant("specsearch")
        assert (v.method, v.field, v.overrides()) == ("specsearch", None, {})

    def test_value_takes_the_fields_type_and_applies(self):
        v = parse_variant("specsearch@threshold-margin=0.010")
        assert v.label == "specsearch@threshold_margin=0.01"
        assert v.apply(SearchConfig(method="specsearch")).threshold_margin == 0.01
        assert parse_variant("ar@children=3").value == 3

    def test_a_fixed_beta_means_the_fixed_threshold_as_on_the_command_line(self):
        config = parse_variant("specsearch@fixed_beta=0.976").apply(SearchConfig(method="specsearch"))
        assert (config.threshold_mode, config.fixed_beta) == ("fixed", 0.976)

    @pytest.mark.parametrize("label, words", [
        ("specsearch@nonsense=1", "not a search option"),
        ("specsearch@method=ar", "not a search option"),
        ("specsearch@children=two", "takes a number"),
        ("specsearch@children=0", "at least 1"),
        ("specsearch@threshold_margin", "METHOD@FIELD=VALUE"),
    ])
    def test_bad_variants_say_why(self, label, words):
        with pytest.raises(ValueError, match=words):
            parse_variant(label)

    def test_sweep_expands_to_labels(self):
        assert expand_sweep("threshold_margin=0, 0.02") == [
            "specsearch@threshold_margin=0.0", "specsearch@threshold_margin=0.02"]
        with pytest.raises(ValueError, match="FIELD=V1,V2"):
            expand_sweep("threshold_margin")


def fake_solve(problem: Problem, label: str) -> SearchResult:
    """Higher margin: fewer drafts accepted, slower, and right more often."""
    v = parse_variant(label)
    margin = v.value if v.field == "threshold_margin" else 0.0
    accepted = 0 if v.method == "ar" else round(8 * (1 - 20 * margin))
    right = v.method == "ar" or int(problem.id[1:]) < 1 + 60 * margin
    wall = 10.0 if v.method == "ar" else 4.0 + 6.0 * (8 - accepted) / 8
    stats = SearchStats(wall_seconds=wall, thoughts_accepted=accepted, thoughts_rejected=8 - accepted
                        if v.method != "ar" else 0)
    answer = problem.answer if right else "-1"
    return SearchResult(question=problem.question, method=v.method, config=v.apply(SearchConfig(method=v.method)).to_dict(),
                        nodes=[], steps=[], best_leaf_id=None, solution=f"\\boxed{{{answer}}}", answer=answer,
                        stats=stats)


class TestSweepInBenchmark:
    def test_variants_share_the_ar_baseline_and_draw_a_curve(self, tmp_path: Path):
        labels = ["ar", "specsearch"] + expand_sweep("threshold_margin=0.02,0.05")
        summary = run_benchmark(PROBLEMS, labels, fake_solve, tmp_path)
        assert summary.curve_path == tmp_path / "curve.png"
        assert summary.curve_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        data = json.loads((tmp_path / "summary.json").read_text())
        assert data["specsearch"]["thought_acceptance_rate"] == 1.0
        assert data["specsearch@threshold_margin=0.05"]["thought_acceptance_rate"] == 0.0
        assert data["specsearch@threshold_margin=0.05"]["accuracy"] == 1.0
        assert data["specsearch@threshold_margin=0.05"]["speedup_vs_ar"] == pytest.approx(1.0)
        assert data["specsearch"]["speedup_vs_ar"] == pytest.approx(2.5)

    def test_a_later_sweep_reuses_recorded_ar_runs(self, tmp_path: Path):
        run_benchmark(PROBLEMS, ["ar", "specsearch"], fake_solve, tmp_path)
        calls: list[str] = []

        def counting(problem, label):
            calls.append(label)
            return fake_solve(problem, label)

        summary = run_benchmark(PROBLEMS, expand_sweep("threshold_margin=0.02,0.05"), counting, tmp_path)
        assert "ar" not in calls and len(calls) == 2 * len(PROBLEMS)
        assert summary["specsearch@threshold_margin=0.02"].speedup_vs_ar is not None
        assert summary.curve_path is not None
        from specsearch.core.bench import _curve_summaries, load_records
        latest = {(r["id"], r["method"]): r for r in load_records(tmp_path / "results.jsonl")}
        drawn = _curve_summaries(PROBLEMS, expand_sweep("threshold_margin=0.02,0.05"), latest, summary.methods)
        assert set(drawn) == {"ar", "specsearch", "specsearch@threshold_margin=0.02", "specsearch@threshold_margin=0.05"}

    def test_no_curve_without_two_values(self, tmp_path: Path):
        summary = run_benchmark(PROBLEMS, ["ar", "specsearch"], fake_solve, tmp_path)
        assert summary.curve_path is None and not (tmp_path / "curve.png").exists()

    def test_curve_series_orders_points_and_counts_the_default(self):
        s = {"specsearch": {"accuracy": 0.1}, "specsearch@threshold_margin=0.02": {"accuracy": 0.2},
             "ar@children=2": {"accuracy": 0.5}}
        series = curve_series(s)
        assert list(series) == [("specsearch", "threshold_margin")]
        default = SearchConfig().threshold_margin  # plain "specsearch" is a point at the default margin
        assert [v for v, _ in series[("specsearch", "threshold_margin")]] == sorted([default, 0.02])

"""The benchmark runner's bookkeeping (specsearch.core.bench), with synthetic results."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from specsearch.core.bench import (
    tree_path,
    BenchProgress,
    BenchSummary,
    format_table,
    load_records,
    run_benchmark,
)
from specsearch.core.datasets import Problem
from specsearch.core.tree import SearchResult, SearchStats

PROBLEMS = [
    Problem(id="p0", question="1+1?", answer="2"),
    Problem(id="p1", question="half of 1?", answer=r"\frac{1}{2}"),
    Problem(id="p2", question="10*100?", answer="1,000"),
]

# (problem id, method) -> what the synthetic search returns.
#   answer, wall seconds, phase seconds, accepted, rejected, tokens drafted, tokens accepted
SPEC = {
    ("p0", "ar"): ("2", 4.0, {"generate": 3.0, "score": 0.5, "select": 0.5}, 0, 0, 0, 0),
    ("p1", "ar"): ("0.5", 6.0, {"generate": 5.0, "score": 1.0}, 0, 0, 0, 0),
    ("p2", "ar"): ("999", 8.0, {"generate": 7.0, "score": 1.0}, 0, 0, 0, 0),
    ("p0", "specsearch"): ("2", 2.0, {"draft": 1.0, "score": 0.5, "regenerate": 0.5}, 3, 1, 0, 0),
    ("p1", "specsearch"): (r"\dfrac{1}{2}", 2.0, {"draft": 1.0, "score": 1.0}, 1, 3, 0, 0),
    ("p2", "specsearch"): ("1000", 2.0, {"draft": 1.5, "regenerate": 0.5}, 4, 0, 0, 0),
    ("p0", "sps"): ("3", 3.0, {"generate": 3.0}, 0, 0, 10, 7),
    ("p1", "sps"): (None, 3.0, {"generate": 3.0}, 0, 0, 30, 13),
    ("p2", "sps"): ("1000", 3.0, {"generate": 3.0}, 0, 0, 0, 0),
}


def make_result(problem: Problem, method: str, cancelled: bool = False) -> SearchResult:
    answer, wall, phases, acc, rej, tdraft, tacc = SPEC[(problem.id, method)]
    stats = SearchStats(
        wall_seconds=wall,
        phase_seconds=dict(phases),
        tokens={"small": 100 if method != "ar" else 0, "large": 50},
        thoughts_drafted=acc + rej,
        thoughts_accepted=acc,
        thoughts_rejected=rej,
        thoughts_regenerated=rej,
        tokens_drafted=tdraft,
        tokens_accepted=tacc,
    )
    return SearchResult(
        question=problem.question,
        method=method,
        config={"method": method},
        nodes=[],
        steps=[],
        best_leaf_id=None,
        solution="" if answer is None else f"\\boxed{{{answer}}}",
        answer=answer,
        stats=stats,
        cancelled=cancelled,
    )


class CountingSolver:
    def __init__(self, cancelled: set[tuple[str, str]] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.cancelled = cancelled or set()

    def __call__(self, problem: Problem, method: str) -> SearchResult:
        self.calls.append((problem.id, method))
        return make_result(problem, method, (problem.id, method) in self.cancelled)


METHODS = ["ar", "specsearch", "sps"]


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


class TestRun:
    def test_runs_every_pair_in_order_and_records(self, tmp_path: Path) -> None:
        solver = CountingSolver()
        progress: list[BenchProgress] = []
        summary = run_benchmark(PROBLEMS, METHODS, solver, tmp_path, on_progress=progress.append)
        expected_order = [(p.id, m) for p in PROBLEMS for m in METHODS]
        assert solver.calls == expected_order
        assert [(p.problem_id, p.method) for p in progress] == expected_order
        assert [p.done for p in progress] == list(range(1, 10))
        assert all(p.total == 9 and not p.skipped for p in progress)
        assert isinstance(summary, BenchSummary)
        assert (summary.ran, summary.skipped) == (9, 0)

        lines = _lines(tmp_path)
        assert [(r["id"], r["method"]) for r in lines] == expected_order
        required = {
            "id", "method", "correct", "answer", "reference", "latency_s",
            "thought_acceptance_rate", "token_acceptance_rate", "tokens_small", "tokens_large",
            "phase_seconds", "cancelled", "thoughts_accepted", "thoughts_rejected",
        }
        assert all(required <= set(r) for r in lines)
        rec = lines[4]  # p1, specsearch
        assert rec["correct"] is True
        assert rec["answer"] == r"\dfrac{1}{2}"
        assert rec["reference"] == r"\frac{1}{2}"
        assert rec["latency_s"] == 2.0
        assert rec["thought_acceptance_rate"] == 0.25
        assert (rec["thoughts_accepted"], rec["thoughts_rejected"]) == (1, 3)
        assert rec["phase_seconds"] == {"draft": 1.0, "score": 1.0}
        assert (rec["tokens_small"], rec["tokens_large"]) == (100, 50)
        assert rec["cancelled"] is False
        assert [r["correct"] for r in lines] == [True, True, False, True, True, False, False, True, True]

    def test_rejects_duplicate_ids_and_methods(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError):
            run_benchmark([PROBLEMS[0], PROBLEMS[0]], ["ar"], CountingSolver(), tmp_path)
        with pytest.raises(ValueError):
            run_benchmark(PROBLEMS, ["ar", "ar"], CountingSolver(), tmp_path)


class TestResume:
    def test_second_run_skips_everything(self, tmp_path: Path) -> None:
        first = run_benchmark(PROBLEMS, METHODS, CountingSolver(), tmp_path)
        solver = CountingSolver()
        progress: list[BenchProgress] = []
        second = run_benchmark(PROBLEMS, METHODS, solver, tmp_path, on_progress=progress.append)
        assert solver.calls == []
        assert len(progress) == 9 and all(p.skipped for p in progress)
        assert (second.ran, second.skipped) == (0, 9)
        assert second.to_dict() == first.to_dict()
        assert len(_lines(tmp_path)) == 9

    def test_interrupted_run_resumes_where_it_stopped(self, tmp_path: Path) -> None:
        class Boom(Exception):
            pass

        def dying(problem: Problem, method: str) -> SearchResult:
            if (problem.id, method) == ("p1", "specsearch"):
                raise Boom
            return make_result(problem, method)

        with pytest.raises(Boom):
            run_benchmark(PROBLEMS, METHODS, dying, tmp_path)
        assert len(_lines(tmp_path)) == 4

        solver = CountingSolver()
        summary = run_benchmark(PROBLEMS, METHODS, solver, tmp_path)
        assert solver.calls == [("p1", "specsearch"), ("p1", "sps"), ("p2", "ar"), ("p2", "specsearch"), ("p2", "sps")]
        assert summary.skipped == 4 and summary.ran == 5
        assert len(_lines(tmp_path)) == 9

    def test_more_methods_later_runs_only_new_pairs(self, tmp_path: Path) -> None:
        run_benchmark(PROBLEMS, ["ar"], CountingSolver(), tmp_path)
        solver = CountingSolver()
        run_benchmark(PROBLEMS, ["ar", "sps"], solver, tmp_path)
        assert solver.calls == [("p0", "sps"), ("p1", "sps"), ("p2", "sps")]

    def test_cancelled_pairs_run_again(self, tmp_path: Path) -> None:
        run_benchmark(PROBLEMS[:1], ["ar", "sps"], CountingSolver(cancelled={("p0", "sps")}), tmp_path)
        assert [r["cancelled"] for r in _lines(tmp_path)] == [False, True]
        solver = CountingSolver()
        summary = run_benchmark(PROBLEMS[:1], ["ar", "sps"], solver, tmp_path)
        assert solver.calls == [("p0", "sps")]
        assert summary["sps"].n == 1 and summary["sps"].n_cancelled == 0


class TestTruncatedLine:
    def test_torn_last_line_is_dropped_and_rewritten(self, tmp_path: Path) -> None:
        run_benchmark(PROBLEMS[:2], ["ar"], CountingSolver(), tmp_path)
        path = tmp_path / "results.jsonl"
        data = path.read_bytes()
        # Simulate a kill in the middle of writing the second line.
        cut = data.rstrip(b"\n").rfind(b"\n") + 1
        path.write_bytes(data[: cut + 25])
        assert len(load_records(path, repair=False)) == 1

        solver = CountingSolver()
        summary = run_benchmark(PROBLEMS[:2], ["ar"], solver, tmp_path)
        assert solver.calls == [("p1", "ar")]
        lines = _lines(tmp_path)  # every line parses again
        assert [(r["id"], r["method"]) for r in lines] == [("p0", "ar"), ("p1", "ar")]
        assert path.read_bytes().endswith(b"\n")
        assert summary["ar"].n == 2

    def test_torn_first_line(self, tmp_path: Path) -> None:
        path = tmp_path / "results.jsonl"
        path.write_bytes(b'{"id": "p0", "meth')
        solver = CountingSolver()
        run_benchmark(PROBLEMS[:1], ["ar"], solver, tmp_path)
        assert solver.calls == [("p0", "ar")]
        assert len(_lines(tmp_path)) == 1

    def test_garbage_complete_line_is_ignored(self, tmp_path: Path) -> None:
        path = tmp_path / "results.jsonl"
        run_benchmark(PROBLEMS[:1], ["ar"], CountingSolver(), tmp_path)
        with open(path, "ab") as fh:
            fh.write(b"\x00\x00not json\n")
        solver = CountingSolver()
        run_benchmark(PROBLEMS[:2], ["ar"], solver, tmp_path)
        assert solver.calls == [("p1", "ar")]
        assert len(load_records(path)) == 2


class TestSummary:
    @pytest.fixture()
    def summary(self, tmp_path: Path) -> BenchSummary:
        return run_benchmark(PROBLEMS, METHODS, CountingSolver(), tmp_path)

    def test_numbers(self, summary: BenchSummary) -> None:
        ar, spec, sps = summary["ar"], summary["specsearch"], summary["sps"]
        assert list(summary) == METHODS
        assert (ar.n, spec.n, sps.n) == (3, 3, 3)
        assert ar.accuracy == pytest.approx(2 / 3)
        assert spec.accuracy == 1.0
        assert sps.accuracy == pytest.approx(1 / 3)
        assert ar.mean_latency_s == pytest.approx(6.0)
        assert spec.mean_latency_s == pytest.approx(2.0)
        assert sps.mean_latency_s == pytest.approx(3.0)
        assert ar.speedup_vs_ar == pytest.approx(1.0)
        assert spec.speedup_vs_ar == pytest.approx(3.0)
        assert sps.speedup_vs_ar == pytest.approx(2.0)
        # pooled, not the mean of per-problem rates (0.75, 0.25, 1.0 -> 0.667)
        assert spec.thought_acceptance_rate == pytest.approx(8 / 12)
        assert ar.thought_acceptance_rate is None
        assert sps.token_acceptance_rate == pytest.approx(20 / 40)
        assert spec.token_acceptance_rate is None
        assert spec.mean_phase_seconds == pytest.approx({"draft": 3.5 / 3, "score": 0.5, "regenerate": 1.0 / 3})
        assert list(spec.mean_phase_seconds) == ["draft", "score", "regenerate"]
        assert ar.mean_phase_seconds == pytest.approx({"generate": 5.0, "score": 2.5 / 3, "select": 0.5 / 3})
        assert spec.mean_tokens_small == 100 and ar.mean_tokens_small == 0

    def test_speedup_over_common_problems_only(self, tmp_path: Path) -> None:
        run_benchmark(PROBLEMS[:1], ["ar"], CountingSolver(), tmp_path)
        # ar recorded only for p0 (4 s); specsearch on all three (2 s each).
        summary = run_benchmark(PROBLEMS, ["specsearch"], CountingSolver(), tmp_path)
        assert summary["specsearch"].n == 3
        assert summary["specsearch"].speedup_vs_ar == pytest.approx(4.0 / 2.0)

    def test_no_ar_no_speedup(self, tmp_path: Path) -> None:
        summary = run_benchmark(PROBLEMS, ["specsearch", "sps"], CountingSolver(), tmp_path)
        assert summary["specsearch"].speedup_vs_ar is None
        assert summary["sps"].speedup_vs_ar is None

    def test_summary_scoped_to_requested_problems(self, tmp_path: Path) -> None:
        run_benchmark(PROBLEMS, ["ar"], CountingSolver(), tmp_path)
        summary = run_benchmark(PROBLEMS[:1], ["ar"], CountingSolver(), tmp_path)
        assert summary["ar"].n == 1 and summary["ar"].mean_latency_s == 4.0


class TestOutputFiles:
    def test_files_exist_and_match(self, tmp_path: Path) -> None:
        summary = run_benchmark(PROBLEMS, METHODS, CountingSolver(), tmp_path)
        for name in ("results.jsonl", "summary.json", "results.csv", "plot.png"):
            assert (tmp_path / name).is_file(), name
        assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left no temp files

        data = json.loads((tmp_path / "summary.json").read_text())
        assert list(data) == METHODS
        for method, numbers in data.items():
            for key in ("accuracy", "mean_latency_s", "speedup_vs_ar", "thought_acceptance_rate", "n"):
                assert key in numbers
            assert numbers == json.loads(json.dumps(summary[method].to_dict()))
        assert data["specsearch"]["speedup_vs_ar"] == pytest.approx(3.0)

        with open(tmp_path / "results.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 9
        assert rows[0]["id"] == "p0" and rows[0]["method"] == "ar"
        assert {"draft_s", "generate_s", "score_s", "regenerate_s", "select_s"} <= set(rows[0])
        assert rows[4]["thoughts_accepted"] == "1"

    def test_each_search_is_kept_whole_under_trees(self, tmp_path: Path) -> None:
        run_benchmark(PROBLEMS, ["ar", "specsearch"], CountingSolver(), tmp_path)
        trees = sorted(p.name for p in (tmp_path / "trees").iterdir())
        assert trees == sorted(f"{p.id}__{m}.json" for p in PROBLEMS for m in ("ar", "specsearch"))
        assert tree_path(tmp_path, "gsm8k/7", "ar@search=mcts").name == "gsm8k_7__ar_search=mcts.json"
        saved = SearchResult.from_dict(json.loads((tmp_path / "trees" / "p1__ar.json").read_text()))
        expected = make_result(PROBLEMS[1], "ar", False)
        assert (saved.method, saved.answer, saved.stats.tokens) == (expected.method, expected.answer,
                                                                     expected.stats.tokens)

    def test_plot_is_png(self, tmp_path: Path) -> None:
        summary = run_benchmark(PROBLEMS, METHODS, CountingSolver(), tmp_path)
        png = (tmp_path / "plot.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert png[12:16] == b"IHDR"
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width > 300 and height > 200
        assert summary.plot_path == tmp_path / "plot.png"


class TestFormatTable:
    def test_table(self, tmp_path: Path) -> None:
        summary = run_benchmark(PROBLEMS, METHODS, CountingSolver(), tmp_path)
        table = format_table(summary)
        lines = table.splitlines()
        assert len(lines) == 2 + len(METHODS)
        for heading in ("method", "n", "accuracy", "mean latency", "speed-up vs ar", "thought acc.", "token acc."):
            assert heading in lines[0]
        spec = next(line for line in lines if line.startswith("specsearch"))
        assert "100.0%" in spec and "2.00 s" in spec and "3.00x" in spec and "66.7%" in spec
        ar = next(line for line in lines if line.startswith("ar "))
        assert "66.7%" in ar and "1.00x" in ar and ar.rstrip().endswith("-")
        # fixed width: columns line up under the header, nothing wider than the separator
        assert lines[1].replace(" ", "").strip("-") == ""
        assert max(len(line) for line in lines) == len(lines[1])

    def test_table_from_summary_json(self, tmp_path: Path) -> None:
        summary = run_benchmark(PROBLEMS, METHODS, CountingSolver(), tmp_path)
        data = json.loads((tmp_path / "summary.json").read_text())
        assert format_table(data) == format_table(summary)


JUDGE = {"kind": "judge", "model": "s.gguf", "head": None, "arith_check": True}
HEAD = {"kind": "head", "model": "s.gguf", "head": "h.npz", "arith_check": False}


class TestRewardModelRecorded:
    def test_records_summary_csv_and_table_name_it(self, tmp_path: Path) -> None:
        summary = run_benchmark(PROBLEMS, METHODS, CountingSolver(), tmp_path, prm=JUDGE)
        assert all(r["prm"] == JUDGE for r in _lines(tmp_path))
        assert all(summary[m].prm == JUDGE for m in METHODS)
        data = json.loads((tmp_path / "summary.json").read_text())
        assert all(data[m]["prm"] == JUDGE for m in METHODS)
        with open(tmp_path / "results.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert {row["prm"] for row in rows} == {"judge on s.gguf, arithmetic check on"}
        lines = format_table(summary).splitlines()
        assert lines[0] == "reward model: judge on s.gguf, arithmetic check on"
        assert lines[1].startswith("method") and len(lines) == 3 + len(METHODS)
        assert format_table(data) == format_table(summary)

    def test_the_search_record_names_it_when_the_caller_does_not(self, tmp_path: Path) -> None:
        def solve(problem: Problem, method: str) -> SearchResult:
            result = make_result(problem, method)
            result.config["prm"] = HEAD  # as Solver.solve records it
            return result

        summary = run_benchmark(PROBLEMS[:1], ["ar"], solve, tmp_path)
        assert _lines(tmp_path)[0]["prm"] == HEAD and summary["ar"].prm == HEAD
        assert "reward model: head on s.gguf with head h.npz, arithmetic check off" in format_table(summary)

    def test_another_reward_model_runs_the_pairs_again(self, tmp_path: Path) -> None:
        run_benchmark(PROBLEMS, ["ar", "sps"], CountingSolver(), tmp_path, prm=JUDGE)
        same = CountingSolver()
        run_benchmark(PROBLEMS, ["ar", "sps"], same, tmp_path, prm=JUDGE)
        assert same.calls == []
        other = CountingSolver()
        summary = run_benchmark(PROBLEMS, ["ar", "sps"], other, tmp_path, prm=HEAD)
        assert other.calls == [(p.id, m) for p in PROBLEMS for m in ("ar", "sps")]
        assert summary["ar"].prm == HEAD and summary["ar"].n == 3
        assert [r["prm"] for r in _lines(tmp_path)] == [JUDGE] * 6 + [HEAD] * 6

    def test_records_without_a_reward_model(self, tmp_path: Path) -> None:
        run_benchmark(PROBLEMS[:2], ["ar"], CountingSolver(), tmp_path)  # no prm: the API's old behaviour
        assert [r["prm"] for r in _lines(tmp_path)] == [None, None]
        summary = run_benchmark(PROBLEMS[:2], ["ar"], CountingSolver(), tmp_path)
        assert summary.skipped == 2 and summary["ar"].prm is None
        assert not format_table(summary).startswith("reward model")
        # a run that names its PRM does not take unlabelled results for its own
        again = CountingSolver()
        run_benchmark(PROBLEMS[:2], ["ar"], again, tmp_path, prm=JUDGE)
        assert again.calls == [("p0", "ar"), ("p1", "ar")]

    def test_mixed_records_have_no_common_reward_model(self) -> None:
        from specsearch.core.bench import summarize

        records = [{"id": "a", "method": "ar", "prm": JUDGE}, {"id": "b", "method": "ar", "prm": HEAD}]
        assert summarize(records)["ar"].prm is None
        assert summarize(records[:1])["ar"].prm == JUDGE


class TestEachRunStartsCold:
    """Every run of `specsearch bench` reads its question as the first method's did: the second
    method on a problem must not find the prompt already in the models' KV caches."""

    def test_every_method_prefills_the_whole_prompt(self, capsys, tiny, tmp_path: Path):
        from specsearch.cli.main import main

        data = tmp_path / "probs.jsonl"
        data.write_text("".join(json.dumps({"question": q, "answer": "2"}) + "\n"
                                for q in ("What is 1 + 1?", "What is 5 - 3?")))
        code = main(["bench", "--dataset", str(data), "--n", "2", "--methods", "ar,ar@seed=3,specsearch",
                     "--small", str(tiny["draft"]), "--large", str(tiny["target"]), "--depth", "2",
                     "--step-tokens", "6", "--children", "1", "--beam-width", "1", "--out", str(tmp_path / "b")])
        assert code == 0, capsys.readouterr().err
        for pid in ("0", "1"):
            firsts = {}
            for tree in (tmp_path / "b" / "trees").glob(f"{pid}__*.json"):
                call = SearchResult.from_dict(json.loads(tree.read_text())).steps[0].calls[0]
                firsts[tree.name] = (call["model"], call["prefill"])
            assert len(firsts) == 3, firsts
            (model, prefill), = set(firsts.values())  # the same, for every method
            assert model == "large" and prefill > 10


class TestTrialsCountedApart:
    """auto's trials (drafts judged only to measure acceptance) have their own counts and column."""

    @staticmethod
    def solver(problem: Problem, method: str) -> SearchResult:
        if method != "auto":
            return make_result(problem, method)
        result = make_result(problem, "ar")  # auto in ar mode: the large model wrote every kept thought
        trials = {"p0": (3, 1), "p1": (0, 4), "p2": (0, 0)}[problem.id]
        result.stats.trial_drafts_accepted, result.stats.trial_drafts_rejected = trials
        result.method = "auto"
        return result

    def test_records_summary_and_table(self, tmp_path: Path) -> None:
        summary = run_benchmark(PROBLEMS, ["ar", "specsearch", "auto"], self.solver, tmp_path)
        auto = {r["id"]: r for r in _lines(tmp_path) if r["method"] == "auto"}
        assert (auto["p0"]["trial_drafts_accepted"], auto["p0"]["trial_drafts_rejected"]) == (3, 1)
        assert auto["p0"]["thoughts_accepted"] == 0 and auto["p0"]["thought_acceptance_rate"] is None
        assert summary["auto"].trial_acceptance_rate == pytest.approx(3 / 8)  # pooled over p0 and p1
        assert summary["auto"].thought_acceptance_rate is None
        assert summary["specsearch"].trial_acceptance_rate is None
        lines = format_table(summary).splitlines()
        assert lines[0].endswith("trial acc.")
        assert next(line for line in lines if line.startswith("auto")).endswith("37.5%")
        assert next(line for line in lines if line.startswith("specsearch")).endswith("-")
        data = json.loads((tmp_path / "summary.json").read_text())
        assert data["auto"]["trial_acceptance_rate"] == pytest.approx(3 / 8)
        assert format_table(data) == format_table(summary)
        csv_header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
        assert {"trial_drafts_accepted", "trial_drafts_rejected"} <= set(csv_header)

    def test_no_trials_no_column(self, tmp_path: Path) -> None:
        summary = run_benchmark(PROBLEMS, METHODS, CountingSolver(), tmp_path)
        assert "trial acc." not in format_table(summary)

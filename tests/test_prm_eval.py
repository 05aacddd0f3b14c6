"""`specsearch prm eval`: ProcessBench loading and sampling, the metric math
(against brute force), scoring with a real tiny judge, the CLI, the Hub path."""

from __future__ import annotations

import json
import re
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from specsearch.cli.main import main
from specsearch.core.api import Solver
from specsearch.core.processbench import (
    ProcessBenchError,
    ProcessItem,
    balanced_sample,
    calibration_sample,
    evaluate_prm,
    load_process_set,
    parse_items,
    score_items,
)
from specsearch.core.prm_metrics import (
    auroc,
    best_threshold,
    predicted_first_wrong,
    processbench_f1,
    step_auroc,
    step_classes,
)
from hub_fixtures import hub  # noqa: F401  (fixture)

REQUIRED_KEYS = {"auroc", "f1", "f1_oracle", "threshold", "threshold_oracle", "items", "steps",
                 "steps_per_second", "score_min", "score_max", "prm_kind", "prm", "calibration"}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def row(i: int, label: int, n_steps: int = 3) -> dict:
    a = i + 2
    steps = [f"{a} + {k} = {a + k}" for k in range(n_steps)]
    if label >= 0:
        steps[label] = f"{a} + {label} = {a + label + 1}"  # the first wrong step
    return {"id": f"t-{i}", "generator": "test", "problem": f"What is {a} plus {n_steps - 1}?",
            "steps": steps, "final_answer_correct": label < 0, "label": label}


def write_items(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def items_of(labels: list[int], n_steps: int = 4) -> list[ProcessItem]:
    return parse_items(json.dumps([row(i, lab, n_steps) for i, lab in enumerate(labels)]))


# ----------------------------------------------------------------- metrics ---
class TestAuroc:
    def brute(self, pos, neg) -> float:
        wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in product(pos, neg))
        return wins / (len(pos) * len(neg))

    def test_matches_pairwise_counting_with_ties(self):
        rng = np.random.default_rng(0)
        for _ in range(50):
            pos = rng.integers(0, 6, rng.integers(1, 30)).astype(float)  # few values: many ties
            neg = rng.integers(0, 6, rng.integers(1, 30)).astype(float)
            assert auroc(pos, neg) == pytest.approx(self.brute(pos, neg), abs=1e-12)

    def test_known_cases(self):
        assert auroc(np.array([0.9, 0.8]), np.array([0.1])) == 1.0
        assert auroc(np.array([0.1]), np.array([0.9, 0.8])) == 0.0
        assert auroc(np.array([0.5, 0.5]), np.array([0.5])) == 0.5
        assert auroc(np.array([0.7, 0.3]), np.array([0.5])) == 0.5
        assert auroc(np.array([0.5]), np.array([])) is None

    def test_steps_after_the_first_error_are_left_out(self):
        scores = [[0.9, 0.2, 0.1, 0.95], [0.8, 0.7]]
        labels = [1, -1]
        good, bad = step_classes(scores, labels)
        assert sorted(good) == [0.7, 0.8, 0.9] and list(bad) == [0.2]
        changed = [[0.9, 0.2, 0.0, 0.0], [0.8, 0.7]]
        assert step_auroc(scores, labels) == step_auroc(changed, labels) == 1.0
        # only the first wrong step is scored (as score_items does): same numbers
        assert step_auroc([[0.9, 0.2], [0.8, 0.7]], labels) == 1.0


# Items A (first error at 1), B (at 0), C and D (no error) -- worked by hand.
HAND_SCORES = [[0.9, 0.3, 0.8], [0.6], [0.7, 0.95], [0.4, 0.9]]
HAND_LABELS = [1, 0, -1, -1]


class TestF1:
    def test_definition_by_hand(self):
        # t = 0.5: A predicts 1 (right), B -1 (wrong), C -1 (right), D 0 (wrong)
        r = processbench_f1(HAND_SCORES, HAND_LABELS, 0.5)
        assert (r.accuracy_erroneous, r.accuracy_correct, r.f1) == (0.5, 0.5, 0.5)
        # t = 0.65: A, B, C right, D wrong -> F1 = 2 * 1 * 0.5 / 1.5
        r = processbench_f1(HAND_SCORES, HAND_LABELS, 0.65)
        assert (r.accuracy_erroneous, r.accuracy_correct) == (1.0, 0.5)
        assert r.f1 == pytest.approx(2 / 3)
        # a score equal to the threshold is not wrong
        assert predicted_first_wrong([0.5, 0.4], 0.5) == 1
        assert predicted_first_wrong([0.5, 0.6], 0.5) == -1

    def test_calibration_picks_the_best_and_lowest_threshold(self):
        # F1 2/3 for t in (0.3, 0.4] and (0.6, 0.7]; ties go to the lower gap's midpoint
        best = best_threshold(HAND_SCORES, HAND_LABELS)
        assert best.f1 == pytest.approx(2 / 3)
        assert best.threshold == pytest.approx(0.35)
        assert (best.accuracy_erroneous, best.accuracy_correct) == (0.5, 1.0)

    def test_best_threshold_equals_a_brute_force_search(self):
        rng = np.random.default_rng(1)
        grid = np.linspace(-0.05, 1.05, 2201)  # finer than the 0.1 spacing of the scores
        for _ in range(25):
            labels = [int(x) for x in rng.integers(-1, 4, 12)]
            labels[0], labels[1] = -1, 2  # both classes present
            scores = [list(np.round(rng.random(5), 1)) for _ in labels]
            best = best_threshold(scores, labels)
            brute = max(processbench_f1(scores, labels, t).f1 for t in grid)
            assert best.f1 == pytest.approx(brute, abs=1e-12)
            again = processbench_f1(scores, labels, best.threshold)
            assert again.f1 == pytest.approx(best.f1, abs=1e-12)
            assert (again.accuracy_erroneous, again.accuracy_correct) == pytest.approx(
                (best.accuracy_erroneous, best.accuracy_correct))
            # scores after a first error do not move the threshold
            later = [s[: lab + 1] + [0.0] * (len(s) - lab - 1) if lab >= 0 else s for s, lab in zip(scores, labels)]
            assert best_threshold(later, labels) == best

    def test_one_class_only_leaves_f1_undefined(self):
        r = best_threshold([[0.9], [0.2]], [-1, -1])
        assert r.f1 is None and r.accuracy_erroneous is None
        assert (r.threshold, r.accuracy_correct) == (0.5, 0.5)  # 0.2 is below the fallback 0.5


# ------------------------------------------------------- loading, sampling ---
class TestLoadAndSample:
    def test_packaged_set_and_balanced_sample(self):
        data = load_process_set("gsm8k")
        assert len(data.items) == 200 and data.key == "packaged:gsm8k"
        sample = balanced_sample(data.items, 40)
        assert sample == balanced_sample(data.items, 40)  # deterministic
        assert sum(it.has_error for it in sample) == 20 and len({it.id for it in sample}) == 40
        order = {it.id: i for i, it in enumerate(data.items)}
        assert [order[it.id] for it in sample] == sorted(order[it.id] for it in sample)  # file order
        assert sample != data.items[:40]
        # each class spread over the whole file, not bunched at its start
        for has_error in (True, False):
            where = [i for i, it in enumerate(data.items) if it.has_error == has_error]
            picked = [order[it.id] for it in sample if it.has_error == has_error]
            assert picked[0] < where[len(where) // 10] and picked[-1] > where[-len(where) // 10]

    def test_odd_n_too_few_and_excluded(self):
        items = items_of([0, 1, 2, -1, -1, -1, -1])
        odd = balanced_sample(items, 5)
        assert sum(it.has_error for it in odd) == 2 and len(odd) == 5
        with pytest.raises(ProcessBenchError, match="needs 4 items with an error, but there are only 3"):
            balanced_sample(items, 8)
        assert len(balanced_sample(items, 8, up_to=True)) == 7
        rest = balanced_sample(items, 2, exclude={it.id for it in odd})
        assert not {it.id for it in rest} & {it.id for it in odd} and len(rest) == 2

    def test_calibration_is_disjoint_when_from_the_same_file(self):
        data = load_process_set("gsm8k")
        evaluated = balanced_sample(data.items, 40)
        cal, note = calibration_sample(data, 40, evaluated, data.key)
        assert len(cal) == 40 and not {it.id for it in cal} & {it.id for it in evaluated}
        assert "disjoint" in note
        everything = balanced_sample(data.items, None)
        cal, note = calibration_sample(data, None, everything, data.key)
        assert cal == everything and "oracle" in note

    def test_json_lines_are_read_too(self, tmp_path):
        path = tmp_path / "x.jsonl"
        path.write_text("\n".join(json.dumps(row(i, lab)) for i, lab in enumerate([1, -1])) + "\n")
        items = load_process_set(path).items
        assert [it.label for it in items] == [1, -1] and items[0].steps[1] == "2 + 1 = 4"

    def test_json_lines_keep_unicode_line_breaks_inside_strings(self, tmp_path):
        rows = [row(i, lab) for i, lab in enumerate([0, -1])]
        rows[0]["steps"][0] = "first\u2028still the first step"
        path = tmp_path / "x.jsonl"
        path.write_text("\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n", encoding="utf-8")
        items = load_process_set(path).items
        assert len(items) == 2 and items[0].steps[0] == "first\u2028still the first step"

    @pytest.mark.parametrize("content, message", [
        ("[{", "invalid JSON"),
        ('[{"id": 1, "problem": "p", "steps": ["a"]}]', "item 0 (id 1): missing field label"),
        ('[{"id": 1, "problem": "p", "steps": ["a", "b"], "label": 2}]', "label 2 is out of range for 2 steps"),
        ('[{"id": 1, "problem": "p", "steps": ["a"], "label": -2}]', "out of range"),
        ('[{"id": 1, "problem": "p", "steps": [], "label": -1}]', "'steps' must be a non-empty list"),
        ('[{"id": 1, "problem": "p", "steps": ["a"], "label": "0"}]', "'label' must be an integer"),
        ("[]", "contains no items"),
        ("hello", "not ProcessBench data"),
    ])
    def test_bad_files(self, tmp_path, content, message):
        path = tmp_path / "bad.json"
        path.write_text(content)
        with pytest.raises(ProcessBenchError, match=re.escape(message)):
            load_process_set(path)

    def test_missing_file_and_unknown_split(self, tmp_path):
        with pytest.raises(ProcessBenchError, match="not found"):
            load_process_set(tmp_path / "none.json")
        with pytest.raises(ProcessBenchError, match="unknown ProcessBench split 'gsm9k'; choose from gsm8k, math"):
            load_process_set("processbench:gsm9k")


# ----------------------------------------------------------------- scoring ---
class RecordingPRM:
    """A reward model without a model: score = 1 / (1 + step index); records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def score(self, question, steps):
        self.calls.append(list(steps))
        return [1.0 / (1 + i) for i in range(len(steps))]

    def score_last(self, question, paths):
        return [self.score(question, p)[-1] for p in paths]


class TestScoring:
    def test_only_steps_up_to_the_first_error_are_scored(self):
        items = items_of([1, -1, 0], n_steps=4)
        prm, seen = RecordingPRM(), []
        scored = score_items(prm, items, lambda done, total: seen.append((done, total)))
        assert [len(c) for c in prm.calls] == [2, 4, 1]
        assert seen == [(2, 7), (6, 7), (7, 7)] and scored.steps == 7

    def test_calibration_on_the_evaluated_items_scores_once(self):
        items = items_of([1, -1, 0, -1])
        prm = RecordingPRM()
        result = evaluate_prm(prm, items, list(items))
        assert len(prm.calls) == 4
        assert result.calibrated == result.oracle
        other = evaluate_prm(RecordingPRM(), items, items_of([2, -1]))
        assert other.calibration_items == 2 and other.items == 4

    def test_tiny_judge_end_to_end(self, tiny):
        items = items_of([1, -1, 2, -1])
        with Solver(prm=tiny["target"], prm_kind="judge", arith_check=False) as solver:
            prm = solver.reward_model()
            result = evaluate_prm(prm, items)
            scores = [prm.score(it.problem, list(it.judged_steps)) for it in items]
        assert result.steps == sum(len(s) for s in scores) == 2 + 4 + 3 + 4
        assert result.auroc == pytest.approx(step_auroc(scores, [it.label for it in items]))
        assert 0.0 <= result.score_min <= result.score_max <= 1.0
        assert result.steps_per_second > 0


# --------------------------------------------------------------------- CLI ---
class TestCli:
    def test_json_on_a_tiny_judge(self, capsys, tiny, tmp_path):
        data = write_items(tmp_path / "pb.json", [row(i, lab) for i, lab in enumerate([0, 2, 1, -1, -1, -1])])
        cal = write_items(tmp_path / "cal.json", [row(10 + i, lab) for i, lab in enumerate([1, 0, -1, -1])])
        plot = tmp_path / "hist.png"
        code, out, err = run_cli(capsys, "prm", "eval", "--prm", str(tiny["target"]), "--prm-kind", "judge",
                                 "--no-arith-check", "--data", str(data), "--n", "4", "--calibrate", str(cal),
                                 "--json", "--plot", str(plot), "--threads", "1")
        assert code == 0, err
        report = json.loads(out)
        assert REQUIRED_KEYS <= set(report)
        assert report["items"] == 4 and report["items_erroneous"] == 2
        assert report["prm"] == "target.gguf" and report["prm_kind"] == "judge"
        assert report["calibration"].startswith(str(cal)) and report["calibration_items"] == 4
        for key in ("auroc", "f1", "f1_oracle", "accuracy_erroneous", "accuracy_correct"):
            assert 0.0 <= report[key] <= 1.0, key
        assert report["f1"] <= report["f1_oracle"] + 1e-12  # the oracle is the best on this data
        assert 0.0 <= report["score_min"] <= report["score_max"] <= 1.0
        assert report["steps_per_second"] > 0 and report["steps"] == report["steps_good"] + report["steps_first_wrong"]
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "eval" in err and "calibrate" in err  # progress bars on stderr

        # the same numbers as scoring the same sample directly
        sample = balanced_sample(load_process_set(data).items, 4)
        with Solver(prm=tiny["target"], arith_check=False) as solver:
            prm = solver.reward_model()
            scores = [prm.score(it.problem, list(it.judged_steps)) for it in sample]
        labels = [it.label for it in sample]
        assert report["auroc"] == pytest.approx(step_auroc(scores, labels), abs=1e-6)
        assert report["f1_oracle"] == pytest.approx(best_threshold(scores, labels).f1, abs=1e-6)

    def test_text_and_default_calibration(self, capsys):
        code, out, _ = run_cli(capsys, "prm", "eval", "--prm-kind", "arith", "--data", "gsm8k", "--n", "10")
        assert code == 0
        assert "ProcessBench F1" in out and "AUROC" in out
        assert "default; choose with --calibrate" in out and "same file as the evaluation data" in out

    @pytest.mark.parametrize("content, message", [
        ("[{", "invalid JSON"),
        ('[{"id": 1, "problem": "p", "steps": ["a"]}]', "missing field label"),
        ('[{"id": 1, "problem": "p", "steps": ["a"], "label": 3}]', "label 3 is out of range"),
    ])
    def test_bad_data_is_one_line_and_exit_2(self, capsys, tmp_path, content, message):
        path = tmp_path / "bad.json"
        path.write_text(content)
        code, out, err = run_cli(capsys, "prm", "eval", "--prm-kind", "arith", "--data", str(path))
        assert code == 2 and out == ""
        assert err.startswith("specsearch: error: ") and err.count("\n") == 1 and message in err

    def test_other_errors_are_one_line_and_exit_2(self, capsys, tmp_path, monkeypatch):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        cases = [
            (["--data", str(tmp_path / "none.json")], "not found"),
            (["--data", "processbench:gsm9k"], "unknown ProcessBench split"),
            (["--data", "gsm8k", "--prm", str(tmp_path / "none.gguf")], "neither a file nor a model-manager name"),
            (["--data", "gsm8k", "--n", "500"], "balanced sample of 500"),
            (["--data", "gsm8k", "--n", "0"], "--n must be at least 1"),
            (["--data", "gsm8k", "--calibrate", str(tmp_path / "none.json")], "not found"),
        ]
        for extra, message in cases:
            code, _, err = run_cli(capsys, "prm", "eval", "--prm-kind", "arith", *extra)
            assert code == 2 and err.count("\n") == 1 and message in err, (extra, err)


# ---------------------------------------------------------------- the Hub ---
@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


class TestHub:
    def test_split_downloads_once_then_works_offline(self, hub, hf_cache, monkeypatch, capsys):
        rows = [row(i, lab) for i, lab in enumerate([1, 0, -1, -1])]
        hub.add("Qwen/ProcessBench", "gsm8k.json", json.dumps(rows).encode(), repo_type="dataset")
        data = load_process_set("processbench:gsm8k")
        assert [it.id for it in data.items] == [r["id"] for r in rows] and data.key == "hub:gsm8k"
        assert any("/datasets/Qwen/ProcessBench/resolve/" in path for _, path, _ in hub.requests)

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        hub.requests.clear()
        code, out, err = run_cli(capsys, "prm", "eval", "--prm-kind", "arith", "--data", "processbench:gsm8k",
                                 "--calibrate", "processbench:gsm8k", "--json")
        assert code == 0, err
        assert hub.requests == []
        report = json.loads(out)
        assert report["items"] == 4 and "Qwen/ProcessBench gsm8k" in report["data"]
        assert "oracle" in report["calibration"]

        code, _, err = run_cli(capsys, "prm", "eval", "--prm-kind", "arith", "--data", "processbench:math")
        assert code == 2 and err.count("\n") == 1
        assert "HF_HUB_OFFLINE is set and Qwen/ProcessBench/math.json is not in the Hugging Face cache" in err

    def test_missing_remote_file(self, hub, hf_cache):
        with pytest.raises(ProcessBenchError, match="Qwen/ProcessBench/omnimath.json"):
            load_process_set("processbench:omnimath")

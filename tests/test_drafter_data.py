"""The labeller of the drafter's own solutions (tests/make_drafter_data.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from make_drafter_data import first_wrong, label_run

QUESTION = "A pole is 20 meters long. It got cut in a way that left it 30% shorter. How long is the pole?"
REFERENCE = "It got 20*.3=<<20*.3=6>>6 meters shorter\nSo it is 20-6=<<20-6=14>>14 meters long"


class TestFirstWrong:
    def test_right_path_has_no_wrong_step(self):
        steps = ["The pole loses 30% of 20 meters: 20 * 0.3 = 6 meters.", "So it is 20 - 6 = 14 meters long."]
        assert first_wrong(QUESTION, REFERENCE, steps) is None

    def test_first_result_the_reference_never_reaches_is_blamed(self):
        steps = ["Let's solve it step by step.", "Cut in half: \\( \\frac{20}{2} = 10 \\) meters.",
                 "So the answer is \\boxed{10}."]
        assert first_wrong(QUESTION, REFERENCE, steps) == 1

    def test_everyday_operand_is_allowed_but_not_as_a_result(self):
        # 100 turns a percent into a fraction (an operand); 2 as a stated result is not reached by the reference
        assert first_wrong(QUESTION, REFERENCE, ["30 / 100 = 0.3 of the pole goes."]) is None
        assert first_wrong(QUESTION, REFERENCE, ["20 - 18 = 2 meters remain."]) == 0

    def test_list_markers_and_earlier_numbers_are_not_new(self):
        steps = ["1. It gets 20 * 0.3 = 6 meters shorter.\n2. The rest is 20 - 6 = 14.",
                 "Step 3: 14 meters is the length."]
        assert first_wrong(QUESTION, REFERENCE, steps) is None

    def test_rounded_decimal_matches_its_exact_value(self):
        ref = "Each gets 10/3=<<10/3=3.3333>>3.3333 pounds"
        assert first_wrong("Split 10 pounds among 3 people.", ref, ["Each gets 10 / 3 = 3.33 pounds."]) is None


class TestLabelRun:
    def tree(self, texts: list[str]) -> dict:
        nodes = [{"id": i, "parent_id": i - 1 if i else None, "text": t} for i, t in enumerate(texts)]
        return {"nodes": nodes, "best_leaf_id": len(texts) - 1}

    def test_wrong_solution_is_labelled_at_its_first_wrong_step(self):
        problem = {"id": "p", "question": QUESTION, "solution": REFERENCE}
        item = label_run(problem, self.tree(["Start.", "20 / 2 = 10 meters.", "\\boxed{10}"]), correct=False)
        assert item["steps"] == ["Start.", "20 / 2 = 10 meters.", "\\boxed{10}"] and item["label"] == 1

    def test_right_answer_is_all_good_and_unlocated_error_is_left_out(self):
        problem = {"id": "p", "question": QUESTION, "solution": REFERENCE}
        assert label_run(problem, self.tree(["20 - 6 = 14", "\\boxed{14}"]), correct=True)["label"] == -1
        assert label_run(problem, self.tree(["20 - 6 = 14", "\\boxed{14}"]), correct=False) is None

    def test_script_reads_bench_folders(self, tmp_path: Path):
        source = tmp_path / "train.jsonl"
        source.write_text(json.dumps({"id": "p", "question": QUESTION, "solution": REFERENCE, "answer": "14"}) + "\n")
        run = tmp_path / "gen"
        (run / "trees").mkdir(parents=True)
        (run / "results.jsonl").write_text(json.dumps({"id": "p", "method": "small", "correct": False}) + "\n")
        (run / "trees" / "p__small.json").write_text(json.dumps(self.tree(["20 / 2 = 10", "\\boxed{10}"])))
        out = tmp_path / "items.json"
        script = Path(__file__).with_name("make_drafter_data.py")
        done = subprocess.run([sys.executable, str(script), str(source), str(run), "--out", str(out)],
                              capture_output=True, text=True, check=True)
        assert "1 items: 0 right, 1 with a located first wrong step" in done.stdout
        assert json.loads(out.read_text())[0]["label"] == 0


class TestNumbersInAlgebra:
    def test_coefficient_of_a_variable_is_not_a_number(self):
        steps = ["Let the car fly c feet; the birdhouse flies \\( 3(2c) = 6c \\) feet."]
        assert first_wrong(QUESTION, REFERENCE, steps) is None

    def test_number_ending_a_sentence_is_read(self):
        assert first_wrong(QUESTION, REFERENCE, ["So the pole is 11."]) == 0

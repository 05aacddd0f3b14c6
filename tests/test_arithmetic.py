"""The exact arithmetic check (core.arithmetic): the equations it finds and judges, the many
things it must leave alone, its false-alarm rate on ProcessBench's correct steps, its catch rate
on GSM8K slips, and how it reaches the reward model, the search tree and the TUI's tree."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from arith_corruption import annotated_lines, corrupt, plain_form

from specsearch.core import events as ev
from specsearch.core.api import Solver
from specsearch.core.arithmetic import FLAGGED_SCORE, ArithmeticGuard, WrongEquation, check_step, explain_step
from specsearch.core.config import SearchConfig
from specsearch.core.datasets import load_dataset
from specsearch.core.generators import _score
from specsearch.core.processbench import load_process_set
from specsearch.core.prm import JudgePRM, make_prm, prm_kind_names
from specsearch.core.search_state import Beam, Candidate, SearchState
from specsearch.core.tree import StepRecord, ThoughtNode

PENS = ("A shop sells pens at 3 dollars each. Tom buys 4 pens and pays with a 20 dollar bill. "
        "How much change does he get?")


def described(text: str) -> list[str]:
    return [w.describe() for w in check_step(text)]


class TestWrongEquations:
    @pytest.mark.parametrize("text, expected", [
        ("So the change is 20 - 12 = 9 dollars.", "20 − 12 = 8, not 9"),
        ("4 * 3 = 13", "4 × 3 = 12, not 13"),
        ("Half of them: $48/2 = 25$.", "48 / 2 = 24, not 25"),
        (r"They take back \(1/3 \times 18 = 7\) flamingos.", "1 / 3 × 18 = 6, not 7"),
        ("12 x 7 = 74", "12 × 7 = 84, not 74"),
        ("3 × 4 = 11", "3 × 4 = 12, not 11"),
        ("5 · 2 = 12", "5 × 2 = 10, not 12"),
        (r"\frac{1}{2} \cdot 10 = 6", "(1 / 2) × 10 = 5, not 6"),
        ("She pays $1,200 + 300 = $1,600 in total.", "1,200 + 300 = 1,500, not 1,600"),
        ("12 dollars * 3 = 35 dollars", "12 × 3 = 36, not 35"),
        ("50% of 80 = 45", "50% of 80 = 40, not 45"),
        ("2 + 3 = 5 + 1 = 7", "5 + 1 = 6, not 7"),
        ("3 + 4 = 8 * 2 = 16", "3 + 4 = 7, not 8 × 2"),
        ("Natalia sold <<48/2=25>>25 clips.", "48 / 2 = 24, not 25"),
        ("10/3 = 3.5", "10 / 3 = 3.33…, not 3.5"),
        ("Change: 20 − 13.00 = 6.00", "20 − 13.00 = 7.00, not 6.00"),
        ("5 - 8 = 3", "5 − 8 = −3, not 3"),
        ("2^{10} = 1000", "2^10 = 1024, not 1000"),
        (r"\sqrt{16} + 1 = 6", "√16 + 1 = 5, not 6"),
        ("30 / 120 * 100 = 20%", "30 / 120 × 100 = 25, not 20%"),
        ("(3)(4) = 13", "(3)(4) = 12, not 13"),
        ("Total cost = $4.20 + $9.45 + $1.35 = $14.99 (rounded).", "4.20 + 9.45 + 1.35 = 15.00, not 14.99"),
        ("The first three groups have a total of 14 + 16 + 12 = 43 children.", "14 + 16 + 12 = 42, not 43"),
        ("Amanda has gone on 7 hikes x 8 = 57 hikes.", "7 × 8 = 56, not 57"),
        ("42 teeth per dog * 5 dogs = 211 teeth for dogs.", "42 × 5 = 210, not 211"),
        ("5 nights * $50/night = $210.", "5 × 50 = 250, not 210"),
        ("Johns remains with 100-25 = 74 dollars.", "100 − 25 = 75, not 74"),
        ("In 4 weeks he will travel 4*560 = 2239km", "4 × 560 = 2240, not 2239"),
        ("So he does 10*7=60 pull-ups a week", "10 × 7 = 70, not 60"),
        ("\\[\n\\text{Total} = 54 + 108 + 27 = 190\n\\]", "54 + 108 + 27 = 189, not 190"),
        ("she earned 0.2 x 50 = $11.", "0.2 × 50 = 10, not 11"),
        ("Missed:60/4=13", "60 / 4 = 15, not 13"),
        ("Step 2: 3 + 4 = 8", "3 + 4 = 7, not 8"),
    ])
    def test_named_with_its_right_value(self, text, expected):
        assert described(text) == [expected]

    def test_every_wrong_equation_of_a_step_is_named_once(self):
        text = "4 * 3 = 13 and 20 - 12 = 9; again <<4*3=13>>13."
        assert described(text) == ["4 × 3 = 12, not 13", "20 − 12 = 8, not 9"]

    def test_annotation_and_its_plain_text_are_checked(self):
        # the annotation is right, the text after it is not (and the other way round)
        assert described("48/2 = <<48/2=24>>25 clips") == ["48 / 2 = 24, not 25"]
        assert described("<<48/2=25>>24") == ["48 / 2 = 24, not 25"]

    def test_describe_and_fields(self):
        [wrong] = check_step("20 - 12 = 9")
        assert wrong == WrongEquation("20 − 12", "9", "8")
        assert wrong.describe() == "20 − 12 = 8, not 9"
        assert explain_step("20 - 12 = 9") == "20 − 12 = 8, not 9"
        assert explain_step("20 - 12 = 8") is None


class TestRightEquations:
    @pytest.mark.parametrize("text", [
        "4 pens cost 4 * 3 = 12 dollars.", "20 - 12 = 8", "$48/2 = 24$", r"\(1/3 \times 18 = 6\)", "12 x 7 = 84",
        "3 × 4 = 12", "5 · 2 = 10", r"\frac{1}{2} \cdot 10 = 5", r"\dfrac12 \times 10 = 5", "$1,200 + 300 = $1,500",
        "12 dollars * 3 = 36 dollars", "50% of 80 = 40", "2 + 3 = 5 + 1 = 6", "<<48/2=24>>24", "x = 5 + 3 = 8",
        "2 * (3 + 4) = 2 * 7 = 14", "-3 + 5 = 2", "5 - 8 = -3", "2^{10} = 1024", r"\sqrt{16} = 4", "3(4 + 2) = 18",
        "1/4 = 25%", "30/120*100 = 25%", "$12.50 * 3 = $37.50", "1,000,000 / 4 = 250,000",
        r"\[ \text{Volume} = \frac{5}{1/4} = 5 \times 4 = 20 \text{ cubic inches} \]",
        r"\[ 2400 - 1100 = 1300 \] So the two monitors cost $1,300.",
        "1/3 × 18 = 0.33 × 18 = 6",  # rounded on the way
    ])
    def test_not_flagged(self, text):
        assert check_step(text) == []

    @pytest.mark.parametrize("text", [
        "10/3 = 3.33", "10/3 = 3.3", "10/3 = 3", "7/2 = 3", "7/2 = 4", "2/3 = 0.67", "2/3 = 0.66",
        "12.5 * 0.07 = 0.88", "20 / 3600 = 0.0056", "22/7 ≈ 3.14", r"22/7 \approx 3.1", "1000/7 ≈ 143",
        "1234/7 ≈ 180", "1/3 = 0.333...", r"1/3 = 0.33\ldots", "1/3 = 0.333…",
    ])
    def test_rounded_to_its_own_precision(self, text):
        assert check_step(text) == []

    @pytest.mark.parametrize("text", ["10/3 = 3.4", "2/3 = 0.68", "22/7 ≈ 3.5", "1234/7 ≈ 150"])
    def test_rounding_has_limits(self, text):
        assert len(check_step(text)) == 1


class TestNoFalseAlarms:
    """What is not confidently plain arithmetic is left alone, even where a naive reading is wrong."""

    @pytest.mark.parametrize("text", [
        # variables and functions
        "x + 2 = 5", "2x + 3 = 11", "3 + 2x = 11", "f(3) = 9", "g(2) + 1 = 7", "a_1 + 3 = 5", "x^2 + 4 = 13",
        r"f\left(\frac{1}{3}\right) = \frac{256}{27}", "y - 2 = 10", "x -2 = 5", "x = 5, so 2x = 10",
        r"\sin 30 + 1 = 1.5", "\\[ 4^2 = 2^2 + 3^2 - 2 \\cdot 2 \\cdot 3 \\cos C \\]", "C(9, 7) = 36",
        # times, ratios, ranges, phone numbers, dates
        "He woke at 3:30 = 2 hours late", "The ratio 3:2 = 1.5", "ages 5-10 = 6 kids", "call 555-1234 = 7",
        "on 2023-10-05 = 3 days ago",
        # mixed numbers
        "2 1/2 * 4 = 10", r"2\frac{1}{2} \times 4 = 10", "1/4 cup + 1 and 1/4 cup = 1.5 cups", "7/2 = 3 1/2",
        # percentages when unclear, modulo
        "80 + 20% = 96", "The discount is 20% = $4", "17 % 5 = 2", "2 + 2 = 1 (mod 3)",
        r"2 + 2 \equiv 1 \pmod{3}", "2+2 = 1 \\pmod 3",
        # words that change the meaning
        "5 hundred + 3 = 503", "3 * 400 = 12 hundred", "half of 10 + 2 = 7", "twice 3 + 4 = 10",
        "3 times 4 + 2 = 14", "10 pages per day on day 1 * 2 = 20 pages", "4 squared + 1 = 17",
        # unit conversions
        "0.5 hours * 2 = 60 minutes", "Pete spends 4*5 = 2000 cents.",
        # layout: lists, math regions, broken numbers
        r"- \(2^9 = 512\) - \(3^1 = 3\)", "- 11^1 = 11\n- 11^2 = 121\n- 11^3 = 1331",
        "They read 14, 400 / 80 = 180 pages", r"Since $90^3=729,\!000$, AB > 90",
        r"\[ \text{Total Arrangements} = 720 \times 24 \times 120 \times 6 \] "
        r"\[ \text{Total Arrangements} = 720 \times 24 = 17280 \]",
        # relations that are not equations, factorials, odd notation
        "3 + 4 ≠ 8", "3 + 4 => 8", "5! = 120", "2 * 3 = 3!", "1 cheese +1 meat *+1 vegetable = 3 bad choices",
        "20 - 12 = 8 + x", "560//10 = 56", "",
    ])
    def test_left_alone(self, text):
        assert check_step(text) == []

    def test_huge_powers_are_not_computed(self):
        assert check_step("9^99999999 = 1") == []
        assert check_step("10^1000 = 1") == []


class TestProcessBench:
    """On the packaged ProcessBench GSM8K excerpt (model-written steps with human labels)."""

    def test_false_alarms_on_correct_steps_at_most_one_percent(self):
        items = load_process_set("gsm8k").items
        right = [s for it in items for i, s in enumerate(it.steps) if not it.has_error or i < it.label]
        assert len(right) > 500
        alarms = [s for s in right if check_step(s)]
        assert len(alarms) <= 0.01 * len(right), [explain_step(s) for s in alarms]

    def test_catches_some_first_wrong_steps(self):
        items = load_process_set("gsm8k").items
        first_wrong = [it.steps[it.label] for it in items if it.has_error]
        caught = [s for s in first_wrong if check_step(s)]
        # most ProcessBench errors are of reasoning, not arithmetic: a handful are slips
        assert len(caught) >= 5


class TestGsm8kSlips:
    """Reference lines of the packaged GSM8K dev set in plain form, then with one result changed."""

    def test_reference_lines_are_not_flagged(self):
        lines = annotated_lines([p.solution for p in load_dataset("gsm8k", None)])
        assert len(lines) > 500
        flagged = [plain_form(line) for line in lines if check_step(plain_form(line))]
        assert len(flagged) <= 0.005 * len(lines), flagged

    def test_most_changed_results_are_caught(self):
        rng = random.Random(0)
        lines = annotated_lines([p.solution for p in load_dataset("gsm8k", None)])
        corrupted = [c for c in (corrupt(line, rng) for line in lines) if c is not None]
        assert len(corrupted) > 500
        caught = sum(bool(check_step(c.text)) for c in corrupted)
        assert caught >= 0.9 * len(corrupted)


class TestRewardModels:
    def test_arith_kind_is_registered_on_import(self):
        out = subprocess.run([sys.executable, "-c", "import specsearch.core; from specsearch.core.prm import "
                              "prm_kind_names, PRM_KINDS; print('arith' in prm_kind_names(), "
                              "PRM_KINDS['arith'].needs_model)"], capture_output=True, text=True, timeout=120)
        assert out.stdout.split() == ["True", "False"], out.stderr
        assert "arith" in prm_kind_names()

    def test_arith_kind_scores_one_unless_an_equation_is_wrong(self):
        prm = make_prm("arith", None)
        steps = ["4 pens cost 4 * 3 = 12 dollars.", "So the change is 20 - 12 = 9 dollars.", "Done."]
        assert prm.score(PENS, steps) == [1.0, 0.0, 1.0]
        assert prm.score_last(PENS, [steps[:1], steps[:2], []]) == [1.0, 0.0, 1.0]

    def test_guard_caps_wrong_steps_and_keeps_the_rest(self, tiny):
        with Solver(prm=tiny["draft"], prm_kind="judge", batch_invariant=True) as solver:
            guard = solver.reward_model()
            assert isinstance(guard, ArithmeticGuard) and isinstance(guard.inner, JudgePRM)
            steps = ["4 pens cost 4 * 3 = 12 dollars.", "So the change is 20 - 12 = 9 dollars."]
            # (the KV cache reuses prefixes between calls: equal up to float noise)
            inner = guard.inner.score(PENS, steps)
            assert guard.score(PENS, steps) == pytest.approx([inner[0], min(inner[1], FLAGGED_SCORE)], abs=1e-5)
            paths = [steps[:1], steps]
            inner_last = guard.inner.score_last(PENS, paths)
            guarded = guard.score_last(PENS, paths)
            assert guarded == pytest.approx([inner_last[0], min(inner_last[1], FLAGGED_SCORE)], abs=1e-5)
            assert guarded[1] <= FLAGGED_SCORE
            assert solver.judge_step(PENS, steps) <= FLAGGED_SCORE
            assert guard.explain(steps[1]) == "20 − 12 = 8, not 9" and guard.explain(steps[0]) is None

    def test_guard_can_be_turned_off(self, tiny):
        with Solver(prm=tiny["draft"], prm_kind="judge", arith_check=False) as solver:
            assert isinstance(solver.reward_model(), JudgePRM)


class TestSearchTree:
    def test_score_puts_the_reason_on_the_node_and_in_the_event(self, tiny):
        with Solver(prm=tiny["draft"], prm_kind="judge") as solver:
            seen: list[ev.SearchEvent] = []
            state = SearchState(PENS, SearchConfig(), seen.append, None)
            state.steps.append(StepRecord(1, None))
            beam = Beam(None, [])
            texts = ["So the change is 20 - 12 = 9 dollars.", "4 pens cost 4 * 3 = 12 dollars."]
            cands = [Candidate(state.new_node(beam, 1, t, 9, "small", "pending", 0.0), beam, [], "stop") for t in texts]
            _score(state, solver.reward_model(), cands, None)
            bad, good = (c.node for c in cands)
            assert bad.flag == "20 − 12 = 8, not 9" and bad.score <= FLAGGED_SCORE
            assert good.flag is None
            scored = {e.node_id: (e.score, e.flag) for e in seen if isinstance(e, ev.ThoughtScored)}
            assert scored == {bad.id: (bad.score, bad.flag), good.id: (good.score, None)}

    def test_every_scored_node_of_a_search_carries_the_check(self, tiny):
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"], prm_kind="arith") as solver:
            config = SearchConfig(method="small", max_depth=3, max_step_tokens=16, children=3, beam_width=2, seed=3)
            result = solver.solve("What is 20 - 12 = ?", config)
            scored = [n for n in result.nodes if n.score is not None]
            assert scored
            for node in scored:
                assert node.flag == explain_step(node.text)
                assert node.score == (0.0 if node.flag else 1.0)

    def test_old_records_without_the_field_still_load(self):
        node = ThoughtNode(0, None, 1, "20 - 12 = 9", 5, "small", "rejected", 0.01)
        data = node.to_dict()
        assert data["flag"] is None
        del data["flag"]  # saved before the field existed
        assert ThoughtNode.from_dict(data) == node
        flagged = ThoughtNode(1, None, 1, "20 - 12 = 9", 5, "small", "rejected", 0.01, flag="20 − 12 = 8, not 9")
        assert ThoughtNode.from_dict(flagged.to_dict()) == flagged


class TestShownInTheTree:
    """The TUI's tree (pure rendering functions, no Textual app needed)."""

    def test_flag_reaches_the_live_tree_label_and_details(self):
        from specsearch.app.formatting import FLAGGED, explain, node_label
        from specsearch.app.live import LiveSearch
        from specsearch.core.tree import SearchResult
        from specsearch.app.widgets.reasoning_tree import styled_label

        live = LiveSearch(PENS, "small")
        node = ThoughtNode(0, None, 1, "So the change is 20 - 12 = 9 dollars.", 9, "small", "generated")
        live.apply([ev.ThoughtDrafted(node), ev.ThoughtScored(0, 0.0, "20 − 12 = 8, not 9")])
        shown = live.nodes[0]
        assert shown.flag == "20 − 12 = 8, not 9"
        label = node_label(shown)
        assert label.startswith("•" + FLAGGED) and "20 - 12 = 9" in label
        assert explain(shown, live.nodes).startswith(f"{FLAGGED} 20 − 12 = 8, not 9")
        styled = styled_label(shown, False)
        assert styled.plain == label and any("red" in str(span.style) for span in styled.spans)
        # an unflagged node looks as before
        plain = ThoughtNode(1, None, 1, "4 * 3 = 12", 5, "small", "generated", 0.9)
        assert FLAGGED not in node_label(plain) and FLAGGED not in explain(plain, {1: plain})
        # and a record saved before the field existed loads
        record = {"question": PENS, "method": "small", "nodes": [
            {k: v for k, v in plain.to_dict().items() if k != "flag"}]}
        assert SearchResult.from_dict(record).nodes[0].flag is None

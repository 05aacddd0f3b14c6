"""Method auto (core.auto_method): its switch decision, and searches on tiny models."""

from __future__ import annotations

import io
import json

import pytest

from specsearch.cli.main import main
from specsearch.cli.solve_cmd import TextPrinter
from specsearch.core import events as ev
from specsearch.core.api import Solver
from specsearch.core.auto_method import (
    AR,
    SPECSEARCH,
    AutoMemory,
    AutoMethod,
    SwitchDecision,
    SwitchPolicy,
    predict_ratio,
    switch_reason,
)
from specsearch.core.config import SearchConfig
from specsearch.core.cost_model import StepTiming
from specsearch.core.methods import METHODS, Method
from specsearch.core.tree import SearchResult
from tiny_models import write_tiny_model

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def config(**kw) -> SearchConfig:
    base = dict(method="auto", max_depth=7, max_step_tokens=12, children=3, beam_width=2, seed=7, temperature=0.9)
    base.update(kw)
    return SearchConfig(**base)


def step_kind(step) -> str:
    """What wrote a step: its generator, or "trial" for auto's measuring step (drafts judged, not used)."""
    return "trial" if step.trial else step.generator


def use_auto(monkeypatch, make) -> None:
    """Method auto, made by ``make(models, threshold)`` for this test only."""
    monkeypatch.setitem(METHODS, "auto", Method("auto", make, ("small", "large"), "auto (test)"))


class TestSwitchDecision:
    def test_alternating_predictions_never_switch(self):
        decision = SwitchDecision(SwitchPolicy(margin=0.05, patience=2))
        for ratio in [0.5, 1.5] * 5 + [0.5, None, 0.5]:
            assert not decision.observe(ratio)
        assert decision.mode == SPECSEARCH

    def test_patience_steps_past_the_margin_switch_both_ways(self):
        decision = SwitchDecision(SwitchPolicy(margin=0.05, patience=2))
        assert not decision.observe(1.06)  # clears 1 + margin: specsearch stays
        assert not decision.observe(1.03)  # faster than ar, but not by the margin: against it
        assert decision.observe(1.03) and decision.mode == AR
        assert not decision.observe(1.04)  # not past the margin
        assert not decision.observe(1.2)
        assert not decision.observe(0.5)  # streak broken
        assert not decision.observe(1.2)
        assert decision.observe(1.2) and decision.mode == SPECSEARCH

    def test_ar_mode_probes_specsearch_every_few_steps(self):
        decision = SwitchDecision(SwitchPolicy(probe_every=3, probe_backoff=1), start=AR)
        assert [decision.next_is_probe() for _ in range(8)] == [False, False, False, True] * 2
        never = SwitchDecision(SwitchPolicy(probe_every=0), start=AR)
        assert not any(never.next_is_probe() for _ in range(10))
        assert not SwitchDecision().next_is_probe()  # specsearch mode: every step is specsearch anyway

    def test_probes_back_off_while_ar_holds_and_reset_on_a_switch_back(self):
        decision = SwitchDecision(SwitchPolicy(probe_every=2, probe_backoff=2, max_probe_every=8), start=AR)
        probes = [i for i in range(1, 40) if decision.next_is_probe()]
        # after 2 ar steps, then 4, then 8, then 8 ... (each probe step counts as a step)
        assert probes == [3, 8, 17, 26, 35]
        decision.streak = 0
        assert not decision.observe(1.5) and decision.observe(1.5) and decision.mode == SPECSEARCH
        assert decision.probe_every == 2

    def test_a_prediction_on_no_new_evidence_neither_grows_nor_breaks_the_streak(self):
        decision = SwitchDecision(SwitchPolicy(margin=0.05, patience=2), start=AR)
        assert not decision.observe(1.5)  # a probe's drafts judged: streak 1
        for _ in range(5):  # ar steps in between: the same evidence again
            assert not decision.observe(1.5, fresh=False)
            assert not decision.observe(0.5, fresh=False)
        assert decision.observe(1.5) and decision.mode == SPECSEARCH  # the second probe

    def test_ar_mode_goes_back_only_when_the_cautious_prediction_passes_the_margin(self):
        decision = SwitchDecision(SwitchPolicy(margin=0.05, patience=2), start=AR)
        for _ in range(4):  # a gain at the estimate, none at the interval's low end: ar stays
            assert not decision.observe(1.4, cautious=1.02)
        assert not decision.observe(1.4, cautious=1.1)
        assert decision.observe(1.4, cautious=1.1) and decision.mode == SPECSEARCH
        # in specsearch mode the estimate decides, whatever the low end says
        assert not decision.observe(1.07, cautious=0.5) and not decision.observe(1.07, cautious=0.5)
        assert decision.mode == SPECSEARCH

    def test_the_streak_carries_into_the_next_search(self):
        memory = AutoMemory(SwitchDecision(SwitchPolicy(patience=2), start=AR))
        assert not memory.decision.observe(1.5)
        memory.start_search()
        assert memory.decision.observe(1.5) and memory.decision.mode == SPECSEARCH

    def test_a_probe_at_a_searchs_last_step_counts_at_the_next_searchs_first_prediction(self):
        memory = AutoMemory(SwitchDecision(start=AR))
        memory.current = [StepTiming(1), StepTiming(2, accepted=3, rejected=5)]
        assert memory.take_in() and not memory.take_in()  # taken in once
        memory.current.append(StepTiming(3, accepted=1))  # a probe at the last step, no prediction after it
        memory.start_search()
        memory.current = [StepTiming(1), StepTiming(2)]
        assert memory.take_in() and not memory.take_in()
        memory.start_search()
        memory.current = [StepTiming(1), StepTiming(2)]
        assert not memory.take_in()

    def test_reason_names_the_acceptance(self):
        assert switch_reason(AR, 0.6, 0.12) == (
            "acceptance 12%: drafting costs more than it saves (specsearch predicted at ×0.60 of ar's speed)")
        assert switch_reason(SPECSEARCH, 1.3, 0.8).startswith("acceptance 80%: drafting saves time again")
        assert switch_reason(SPECSEARCH, 1.3, 0.8, worst=(0.55, 1.08)) == (
            "acceptance 80%: drafting saves time again (specsearch predicted at ×1.30 of ar's speed, "
            "×1.08 even at acceptance 55%)")
        # ar because the gain is not certain, not because drafting was measured to lose
        assert switch_reason(AR, 1.25, 0.63, "in earlier searches", worst=(0.45, 0.97)) == (
            "acceptance 63% in earlier searches: drafting not shown to pay (specsearch predicted at ×1.25 of "
            "ar's speed, ×0.97 at acceptance 45%)")
        assert switch_reason(AR, 0.9, 0.3, worst=(0.2, 0.8)).startswith("acceptance 30%: drafting costs more")
        # a search that starts in ar one try short of going back says so
        assert switch_reason(AR, 1.45, 0.64, "in earlier searches", worst=(0.53, 1.23)) == (
            "acceptance 64% in earlier searches: drafting looks to pay again (specsearch predicted at ×1.45 of "
            "ar's speed, ×1.23 even at acceptance 53%); ar until a next try confirms it")
        # a gain below the bar: not worth the drafts' risk to the answer
        assert switch_reason(AR, 1.03, 0.4, worst=(0.3, 0.9), bar=1.05) == (
            "acceptance 40%: drafting saves too little to risk the answer on drafts (specsearch predicted at "
            "×1.03 of ar's speed, below ×1.05)")
        assert switch_reason(AR, 1.19, 0.6).endswith("below ×1.20)")  # the default bar
        assert switch_reason(AR, 0.5, 0.1, "in earlier searches").startswith(
            "acceptance 10% in earlier searches: drafting costs more")


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A target several times slower than the tiny draft (same vocabulary)."""
    return write_tiny_model(tmp_path_factory.mktemp("big") / "big.gguf", 1, n_embd=256, n_layer=6, n_ff=768)


class TestAutoSearches:
    def test_acceptance_zero_switches_to_ar_with_a_reason(self, tiny):
        events = []
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"]) as solver:
            result = solver.solve(QUESTION, config(threshold_margin=1e9), on_event=events.append)
        switches = [e for e in events if isinstance(e, ev.MethodSwitched)]
        generators = [s.generator for s in result.steps]
        # step 1 sets beta, from step 2 on every draft is rejected; after two predictions
        # against specsearch (patience 2: at step 4 at the earliest, here by step 5) ar writes the steps
        assert len(switches) == 1, generators
        first = switches[0]
        assert (first.from_method, first.to_method) == ("specsearch", "ar") and first.step in (4, 5)
        assert generators == ["specsearch"] * (first.step - 1) + ["ar"] * (len(generators) - first.step + 1)
        assert first.reason.startswith(f"acceptance {first.acceptance:.0%}: drafting costs more than it saves")
        assert first.acceptance < 0.2 and first.predicted_speedup < 0.95
        assert first.acceptance_low == 0.0 and first.acceptance_high < 0.5
        assert result.stats.switches[0] == first.record() == {k: v for k, v in first.to_dict().items() if k != "event"}
        saved = SearchResult.from_dict(json.loads(json.dumps(result.to_dict())))
        assert saved.stats.switches == result.stats.switches
        assert saved.steps[3].generator == "ar"

    def test_acceptance_one_keeps_specsearch(self, tiny, big, monkeypatch):
        # A low bar (×0.5): this busy machine's timing noise must not decide; a 3x slower target must.
        use_auto(monkeypatch, lambda models, threshold: AutoMethod(models, threshold,
                                                                  SwitchDecision(SwitchPolicy(margin=-0.5))))
        with Solver(small=tiny["draft"], large=big, prm=tiny["draft"]) as solver:
            result = solver.solve(QUESTION, config(threshold_margin=-1e9))
        assert [s.generator for s in result.steps] == ["specsearch"] * len(result.steps)
        assert len(result.steps) >= 4 and result.stats.switches == []
        assert result.stats.thoughts_rejected == 0

    def test_pinned_to_ar_equals_method_ar(self, tiny, monkeypatch):
        predicted = []

        def pinned(timings, thoughts):
            ratio, model = predict_ratio(timings, thoughts)
            predicted.append(ratio)
            return 0.0, model  # ar always predicted faster

        use_auto(monkeypatch, lambda models, threshold: AutoMethod(
            models, threshold, SwitchDecision(SwitchPolicy(probe_every=0), start=AR), pinned))
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"], batch_invariant=True) as solver:
            auto = solver.solve(QUESTION, config())
            ar = solver.solve(QUESTION, config(method="ar"))
        fields = ("parent_id", "depth", "text", "n_tokens", "source", "fate", "selected", "finished")

        def signature(result):  # scores to 4 places: the judge's numerics vary in the last bits
            return [[getattr(n, f) for f in fields] + [round(n.score, 4)] for n in result.nodes]

        assert signature(auto) == signature(ar)
        assert auto.solution == ar.solution
        assert {s.generator for s in auto.steps} == {"ar"} and auto.stats.switches == []
        assert len(predicted) == len(auto.steps) - 1  # asked before every step after the first


    def test_trials_measure_drafts_but_never_change_the_answer(self, tiny, monkeypatch):
        # ar mode with a trial every other step, and a bar every draft passes: the trials judge
        # drafts (all accepted) yet the tree's beam, and so the answer, are method ar's exactly.
        use_auto(monkeypatch, lambda models, threshold: AutoMethod(models, threshold, SwitchDecision(
            SwitchPolicy(probe_every=1, probe_backoff=1), start=AR), lambda timings, thoughts: (
                0.0, predict_ratio(timings, thoughts)[1])))
        events = []
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"], batch_invariant=True) as solver:
            auto = solver.solve(QUESTION, config(threshold_margin=-1e9), on_event=events.append)
            ar = solver.solve(QUESTION, config(method="ar", threshold_margin=-1e9))
        kinds = [step_kind(s) for s in auto.steps]
        assert kinds.count("trial") >= 2 and "specsearch" not in kinds, kinds
        # Each trial is announced (solve prints it), at its step.
        tried_steps = [e.step for e in events if isinstance(e, ev.DraftsTried)]
        assert tried_steps == [s.step for s in auto.steps if s.trial]
        out = io.StringIO()
        printer = TextPrinter(out)
        for e in events:
            printer.handle(e)
        assert out.getvalue().count("auto: a trial at step") == len(tried_steps)
        tried = [n for n in auto.nodes if n.source == "small"]
        assert f"trial drafts accepted {len(tried)}/{len(tried)} (100%, not kept)" in out.getvalue()
        assert "thoughts accepted" not in out.getvalue()
        assert tried and all(n.fate == "accepted" and not n.selected and n.trial for n in tried)
        # Counted apart: no thought of this search was a draft the search kept.
        s = auto.stats
        assert (s.trial_drafts_accepted, s.trial_drafts_rejected) == (len(tried), 0) and s.trial_acceptance_rate == 1.0
        assert (s.thoughts_accepted, s.thoughts_rejected, s.thoughts_drafted) == (0, 0, 0)
        assert s.thought_acceptance_rate is None
        # What the user reads: the statistics panel and the tree, built from the events as the TUI builds them.
        from specsearch.app.formatting import explain, node_label, stats_rows
        from specsearch.app.live import LiveSearch
        live = LiveSearch()
        live.apply(events)
        rows = dict(stats_rows("auto", live.stats))
        assert rows["thoughts accepted"] == "–"
        assert rows["trial drafts accepted"] == f"{len(tried)}/{len(tried)} (100%), judged only, not kept"
        assert all("(trial, not kept)" in node_label(live.nodes[n.id]) for n in tried)
        assert [st.trial for st in live.steps] == [st.trial for st in auto.steps]
        assert explain(tried[0], live.nodes).startswith("auto's trial: the small model drafted this step")
        assert not any("trial" in node_label(n) for n in auto.nodes if n.source == "large")

        def beam(result):
            return [(n.depth, n.text, n.selected, n.finished) for n in result.nodes if n.source == "large"]

        assert beam(auto) == beam(ar) and auto.solution == ar.solution
        # The cost model sees each trial as a step of as many child slots as ar's, with its drafts judged.
        from specsearch.core.cost_model import step_timings
        timings = step_timings(auto.nodes, auto.steps)
        trial_timings = [t for t in timings if t.trial]
        assert trial_timings and all(t.accepted == t.thoughts == t.calls["large"].batch > 0 and "small" in t.calls
                                     for t in trial_timings)

    def test_in_ar_mode_only_probes_count_towards_going_back(self, tiny, monkeypatch):
        import specsearch.core.auto_method as auto_method

        monkeypatch.setattr(auto_method, "cautious_ratio", lambda model, thoughts, z: (0.5, 2.0))
        fresh = []

        def gain(timings, thoughts):  # drafting always predicted to pay
            fresh.append(timings[-1].accepted + timings[-1].rejected > 0)
            return 2.0, predict_ratio(timings, thoughts)[1]

        use_auto(monkeypatch, lambda models, threshold: AutoMethod(models, threshold, SwitchDecision(
            SwitchPolicy(patience=2, probe_every=2, probe_backoff=1), start=AR), gain))
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"]) as solver:
            result = solver.solve(QUESTION, config(max_depth=10, threshold_margin=-1e9, seed=1))
        gens = [step_kind(s) for s in result.steps]
        assert len(gens) >= 8, gens
        # trials at steps 4 and 7; the first makes a streak of one, the ar steps after it add
        # nothing, the second completes it: specsearch from step 8 on
        assert gens[:8] == ["ar", "ar", "ar", "trial", "ar", "ar", "trial", "specsearch"], gens
        assert fresh[:6] == [False, False, False, True, False, False]
        assert [(s["step"], s["to_method"]) for s in result.stats.switches] == [(8, "specsearch")]
        assert "(specsearch predicted at ×2.00 of ar's speed, ×2.00 even at acceptance 50%)" in \
            result.stats.switches[0]["reason"]


class TestMemoryBetweenSearches:
    def test_a_second_search_starts_where_the_first_ended(self, tiny):
        events = []
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"]) as solver:
            first = solver.solve(QUESTION, config(threshold_margin=1e9))
            second = solver.solve(QUESTION, config(threshold_margin=1e9, seed=8, max_depth=9), on_event=events.append)
            other = solver.solve(QUESTION, config(threshold_margin=1e9, children=2))  # other settings: fresh
        first_gens = [s.generator for s in first.steps]
        assert first_gens.count("specsearch") >= 3 and first_gens[-1] == "ar"
        switches = [e for e in events if isinstance(e, ev.MethodSwitched)]
        # The second search is told why it starts in ar, at its first step, and drafts only in probes.
        assert [(e.step, e.from_method, e.to_method) for e in switches] == [(1, "specsearch", "ar")]
        assert switches[0].reason.startswith(f"acceptance {switches[0].acceptance:.0%} in earlier searches: "
                                             "drafting costs more than it saves")
        gens = [step_kind(s) for s in second.steps]
        assert len(gens) >= 6 and gens[0] == "ar" and "specsearch" not in gens
        probes = [i for i, g in enumerate(gens) if g == "trial"]
        assert len(probes) <= 1, gens  # the probe interval carried over from the first search
        assert second.stats.switches == [switches[0].record()]
        assert [s.generator for s in other.steps][:3] == ["specsearch"] * 3

    def test_a_try_at_a_searchs_last_step_counts_in_the_next_search(self, tiny, monkeypatch):
        import specsearch.core.auto_method as auto_method

        monkeypatch.setattr(auto_method, "cautious_ratio", lambda model, thoughts, z: (0.5, 2.0))
        decision = SwitchDecision(SwitchPolicy(patience=2, probe_every=2, probe_backoff=1), start=AR)
        use_auto(monkeypatch, lambda models, threshold: AutoMethod(
            models, threshold, predict=lambda timings, thoughts: (2.0, predict_ratio(timings, thoughts)[1])))
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"]) as solver:
            models = solver.models("auto")
            cfg = config(max_depth=4, threshold_margin=-1e9, seed=1)
            models.between_searches[auto_method.memory_key(cfg)] = AutoMemory(decision)
            first = solver.solve(QUESTION, cfg)
            assert [step_kind(s) for s in first.steps] == ["ar", "ar", "ar", "trial"]  # a try at the last step
            memory = models.between_searches[auto_method.memory_key(cfg)]
            assert len(memory.current) == 4 and memory.current[-1].accepted > 0  # the last step is kept
            second = solver.solve(QUESTION, cfg)
            third = solver.solve(QUESTION, cfg)
        # Each try is at a search's last step: it counts at the next search's first prediction
        # (step 2), so the second try completes the streak at the third search's step 2.
        assert [step_kind(s) for s in second.steps] == ["ar", "ar", "ar", "trial"]
        assert [s["to_method"] for s in second.stats.switches] == ["ar"]  # only why it starts in ar
        assert [(s["step"], s["to_method"]) for s in third.stats.switches] == [(1, "ar"), (2, "specsearch")]
        assert [s.generator for s in third.steps] == ["ar", "specsearch", "specsearch", "specsearch"]


    def test_memory_is_the_solvers_and_closing_forgets_it(self, tiny):
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"]) as solver:
            solver.solve(QUESTION, config(threshold_margin=1e9))
            assert solver.models("auto").between_searches  # kept for the next search
            solver.close()
            assert not solver.models("auto").between_searches


class TestSolveCommand:
    ARGS = ["--depth", "6", "--step-tokens", "12", "--children", "3", "--beam", "2", "--seed", "7",
            "--threshold-margin", "1e9"]

    def models(self, tiny):
        return ["--small", str(tiny["draft"]), "--large", str(tiny["target"]), "--prm", str(tiny["draft"])]

    def test_json_has_the_switch_event_and_the_switches(self, capsys, tiny):
        code = main(["solve", QUESTION, "--method", "auto", *self.models(tiny), *self.ARGS, "--json"])
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert code == 0
        switched = [e for e in events if e["event"] == "MethodSwitched"]
        assert len(switched) == 1 and switched[0]["to_method"] == "ar"
        assert "drafting costs more than it saves" in switched[0]["reason"]
        stats = events[-1]["result"]["stats"]
        assert stats["switches"] == [{k: v for k, v in switched[0].items() if k != "event"}]
        assert stats["predicted_speedup"] > 0

    def test_text_names_the_switch_and_the_prediction(self, capsys, tiny):
        code = main(["solve", QUESTION, "--method", "auto", *self.models(tiny), *self.ARGS])
        out = capsys.readouterr().out
        assert code == 0
        assert "⇄ auto: specsearch → ar from step" in out and "predicted speed-up vs ar ×" in out

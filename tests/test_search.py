"""Speculative search on tiny generated models (real llama.cpp, no mocks)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from specsearch.core import events as ev
from specsearch.core.api import Solver
from specsearch.core.config import SearchConfig
from specsearch.core.engine import Engine, LoadOptions, ScoreRequest
from specsearch.core.events import CancelToken
from specsearch.core.prm import JudgePRM, StepTagPRM
from specsearch.core.threshold import Threshold, theta_stat

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def small_config(**kw) -> SearchConfig:
    base = dict(max_depth=3, max_step_tokens=12, children=3, beam_width=2, seed=7, temperature=0.9)
    base.update(kw)
    return SearchConfig(**base)


@pytest.fixture
def solver(tiny):
    # batch-invariant numerics: trees are compared token for token
    with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"], batch_invariant=True) as s:
        yield s


def tree_signature(result, fields=("parent_id", "depth", "text", "n_tokens", "selected", "finished")):
    return [tuple(getattr(n, f) for f in fields) + (round(n.score, 4),) for n in result.nodes]


class TestThresholdExtremes:
    def test_minus_infinity_accepts_all_and_equals_small_tree(self, solver):
        spec = solver.solve(QUESTION, small_config(method="specsearch", threshold_mode="fixed", fixed_beta=-math.inf))
        small = solver.solve(QUESTION, small_config(method="small"))
        assert {n.fate for n in spec.nodes} == {"accepted"}
        assert spec.stats.thoughts_regenerated == 0
        assert tree_signature(spec) == tree_signature(small)
        assert spec.solution == small.solution

    def test_plus_infinity_rejects_all_and_equals_sps_outputs(self, solver):
        spec = solver.solve(QUESTION, small_config(method="specsearch", threshold_mode="fixed", fixed_beta=math.inf))
        sps = solver.solve(QUESTION, small_config(method="sps"))
        assert spec.stats.thoughts_accepted == 0
        assert spec.stats.thoughts_rejected == spec.stats.thoughts_regenerated > 0
        regenerated = [n for n in spec.nodes if n.fate == "regenerated"]
        assert [(n.depth, n.text, n.n_tokens) for n in regenerated] == [(n.depth, n.text, n.n_tokens) for n in sps.nodes]
        # each regenerated thought replaces the rejected draft of the same slot
        for n in regenerated:
            old = spec.node(n.replaces)
            assert old.fate == "rejected" and old.parent_id == n.parent_id and old.depth == n.depth
        assert spec.solution == sps.solution


    def test_once_token_drafting_is_measured_not_to_pay_rewrites_are_method_ar_tokens(self, solver):
        # Greedy: k = 0 rounds of the speculative decoder read the prompt in other batches than
        # the large model alone, which can flip a near-tie; specsearch's rewrites (and its first
        # step) then use ar's own writer, so β = +∞ reproduces ar's tree exactly.
        cfg = dict(temperature=0.0, children=1, beam_width=2, max_depth=3)
        policy = solver.models("specsearch").speculative_decoder.policy
        policy.draft_cost.add(1, 1.0)  # drafting one token costs as much as 100 target tokens
        for n in (1, 4):
            policy.target_cost.add(n, 0.01 * n)
        spec = solver.solve(QUESTION, small_config(method="specsearch", threshold_mode="fixed",
                                                   fixed_beta=math.inf, **cfg))
        ar = solver.solve(QUESTION, small_config(method="ar", **cfg))
        assert spec.stats.thoughts_regenerated > 0
        assert spec.stats.target_passes == 0  # the decoder wrote nothing ...
        sps = solver.solve(QUESTION, small_config(method="sps", **cfg))
        assert sps.stats.target_passes > 0  # ... though method sps still goes through it
        kept = [n for n in spec.nodes if n.fate != "rejected"]
        fields = ("depth", "text", "n_tokens", "selected", "finished")  # ids differ: drafts have some
        assert tree_signature(SimpleNamespace(nodes=kept), fields) == tree_signature(ar, fields)


class TestThresholdUpdate:
    @pytest.mark.parametrize("stat,q", [("mean", 0.5), ("max", 0.5), ("quantile", 0.25), ("quantile", 0.9)])
    def test_formula(self, stat, q):
        cfg = SearchConfig(threshold_stat=stat, threshold_quantile=q, theta=0.8)
        th = Threshold(cfg)
        steps = [[0.2, 0.9, 0.5], [], [0.7, 0.1], [0.4]]
        expect = None
        for scores in steps:
            got = th.observe_large(scores)
            if scores:
                value = {"mean": np.mean, "max": np.max}.get(stat, lambda s: np.quantile(s, q))(scores)
                expect = value if expect is None else 0.8 * expect + 0.2 * value
            assert got == pytest.approx(expect)

    def test_fixed_mode_never_moves(self):
        th = Threshold(SearchConfig(threshold_mode="fixed", fixed_beta=0.42))
        assert th.observe_large([0.9, 0.95]) == 0.42
        assert th.beta == 0.42

    def test_search_follows_the_formula(self, solver):
        cfg = small_config(method="specsearch", max_depth=4, theta=0.6, threshold_stat="mean")
        result = solver.solve(QUESTION, cfg)
        beta = None
        for step in result.steps:
            large = [result.node(i) for i in range(len(result.nodes))
                     if result.node(i).depth == step.step and result.node(i).source == "large"]
            assert step.beta == (pytest.approx(beta) if beta is not None else None)
            scores = [n.score for n in large]
            if scores:
                value = theta_stat(scores, "mean")
                beta = value if beta is None else 0.6 * beta + 0.4 * value
            for n in result.nodes:
                if n.depth == step.step and n.source == "small":
                    assert n.fate == ("accepted" if n.score >= step.beta else "rejected")

    def test_unknown_stat(self):
        with pytest.raises(ValueError):
            theta_stat([0.1], "median")


class TestEvents:
    def test_events_are_ordered_and_describe_the_tree(self, solver):
        seen: list[ev.SearchEvent] = []
        result = solver.solve(QUESTION, small_config(method="specsearch", max_depth=3), on_event=seen.append)
        kinds = [e.kind for e in seen]
        assert kinds[0] == "SearchStarted" and kinds[-1] == "SearchFinished"
        assert seen[-1].result is result
        assert kinds.count("StepStarted") == len(result.steps) == kinds.count("BeamsSelected")
        created = [e.node.id for e in seen if isinstance(e, (ev.ThoughtDrafted, ev.ThoughtRegenerated))]
        assert sorted(created) == [n.id for n in result.nodes]
        scored = {e.node_id: e.score for e in seen if isinstance(e, ev.ThoughtScored)}
        assert scored == {n.id: n.score for n in result.nodes}
        assert {e.node_id for e in seen if isinstance(e, ev.ThoughtAccepted)} == {n.id for n in result.nodes if n.fate == "accepted"}
        assert {e.node_id for e in seen if isinstance(e, ev.ThoughtRejected)} == {n.id for n in result.nodes if n.fate == "rejected"}
        selected = {i for e in seen if isinstance(e, ev.BeamsSelected) for i in e.selected_ids}
        assert selected == {n.id for n in result.nodes if n.selected}
        # per step: StepStarted, then thoughts, then BeamsSelected; a node is scored after it exists
        step = 0
        existing: set[int] = set()
        for e in seen[1:-1]:
            if isinstance(e, ev.StepStarted):
                step += 1
                assert e.step == step
            elif isinstance(e, (ev.ThoughtDrafted, ev.ThoughtRegenerated)):
                assert e.node.depth == step
                existing.add(e.node.id)
            elif isinstance(e, (ev.ThoughtScored, ev.ThoughtAccepted, ev.ThoughtRejected)):
                assert e.node_id in existing
            elif isinstance(e, ev.BeamsSelected):
                assert e.step == step
                assert set(e.selected_ids) <= existing
        assert result.best_leaf_id is not None
        assert result.solution.startswith(result.path(result.best_leaf_id)[0].text)

    def test_events_serialise_to_json(self, solver):
        import json

        lines = []
        solver.solve(QUESTION, small_config(method="ar", max_depth=2), on_event=lambda e: lines.append(json.dumps(e.to_dict(), default=str)))
        assert json.loads(lines[0])["event"] == "SearchStarted"
        assert json.loads(lines[-1])["event"] == "SearchFinished"


class TestCancellation:
    def test_cancel_stops_within_one_step_and_engine_stays_usable(self, solver, tiny):
        token = CancelToken()

        def on_event(e):
            if isinstance(e, ev.StepStarted) and e.step == 2:
                token.cancel()

        seen = []
        cfg = small_config(method="specsearch", max_depth=6)
        result = solver.solve(QUESTION, cfg, on_event=lambda e: (seen.append(e), on_event(e)), cancel=token)
        assert result.cancelled
        assert max(n.depth for n in result.nodes) <= 2
        assert not any(n.selected for n in result.nodes if n.depth == 2)
        assert sum(isinstance(e, ev.StepStarted) for e in seen) == 2
        assert isinstance(seen[-1], ev.SearchFinished)
        again = solver.solve(QUESTION, cfg)
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"], batch_invariant=True) as fresh:
            reference = fresh.solve(QUESTION, cfg)
        assert not again.cancelled
        assert tree_signature(again) == tree_signature(reference)


class TestDeterminism:
    @pytest.mark.parametrize("method", ["specsearch", "ar", "sps", "small"])
    def test_same_seed_same_tree(self, solver, method):
        cfg = small_config(method=method)
        a = solver.solve(QUESTION, cfg)
        b = solver.solve(QUESTION, cfg)
        assert tree_signature(a) == tree_signature(b)
        c = solver.solve(QUESTION, small_config(method=method, seed=8))
        assert tree_signature(c) != tree_signature(a)


class TestSelection:
    def test_beams_are_the_top_path_scores(self, solver):
        result = solver.solve(QUESTION, small_config(method="small", aggregation="min", max_depth=3))
        for step in result.steps:
            cands = [n for n in result.nodes if n.depth == step.step and n.fate != "rejected"]
            top = sorted(cands, key=lambda n: (-n.path_score, n.id))[:2]
            assert [n.id for n in top] == step.selected
            for n in cands:
                parent = result.node(n.parent_id).path_score if n.parent_id is not None else None
                assert n.path_score == pytest.approx(n.score if parent is None else min(parent, n.score))

    def test_prompt_too_long_is_a_clear_error(self, tiny):
        from specsearch.core.errors import ContextOverflowError
        from specsearch.core.api import ModelSpec

        with Solver(small=ModelSpec(str(tiny["draft"]), n_ctx=1024), prm=ModelSpec(str(tiny["draft"]), n_ctx=1024)) as s:
            with pytest.raises(ContextOverflowError, match="question"):
                s.solve("why " * 400, small_config(method="small"))
            assert s.solve("short", small_config(method="small", max_depth=1)).nodes


class TestRewardModels:
    def test_step_tag_scores_match_the_logits(self, tiny):
        with Engine(tiny["target"], LoadOptions(batch_invariant=True)) as eng:
            prm = StepTagPRM(eng, tag=" ки", good_token="+", bad_token="-")
            steps = ["3 + 4 = 7", "so he has 7", "The answer is 7"]
            scores = prm.score(QUESTION, steps)
            req = prm._request(QUESTION, steps)
            with Engine(tiny["target"], LoadOptions(batch_invariant=True)) as fresh:
                rows = fresh.score([req], reuse=False)[0]
            p = np.exp(rows)
            expect = p[:, 0] / (p[:, 0] + p[:, 1])
            assert np.allclose(scores, expect, atol=1e-5)
            assert all(0 <= s <= 1 for s in scores)
            # the last score of a path equals scoring it as a sibling batch
            last = prm.score_last(QUESTION, [steps[:1], steps[:2], steps])
            assert np.allclose(last, scores, atol=1e-4)

    def test_judge_batched_equals_one_by_one(self, tiny):
        with Engine(tiny["target"], LoadOptions(batch_invariant=True)) as eng:
            judge = JudgePRM(eng)
            paths = [["3 + 4 = 7"], ["3 + 4 = 8"], ["3 + 4 = 7", "The answer is \\boxed{7}"]]
            batched = judge.score_last(QUESTION, paths)
            single = [JudgePRM(eng).score_last(QUESTION, [p])[0] for p in paths]
            assert np.allclose(batched, single, atol=1e-4)
            assert len(set(np.round(batched, 6))) == 3
            assert judge.score(QUESTION, paths[2]) == pytest.approx([batched[0], batched[2]], abs=1e-4)

    def test_judge_reads_the_yes_no_tokens(self, tiny):
        with Engine(tiny["target"], LoadOptions(batch_invariant=True)) as eng:
            judge = JudgePRM(eng, yes_words=("yes",), no_words=("no",))
            req = judge._request(QUESTION, ["3 + 4 = 7"])
            assert req.tokens[-3:] == eng.tokenize("<|im_start|>assistant\n", add_special=False)[-3:]
            lp = eng.score([ScoreRequest(req.tokens, req.positions, req.candidates)])[0][0]
            p = np.exp(lp)
            assert judge.score_last(QUESTION, [["3 + 4 = 7"]])[0] == pytest.approx(p[0] / (p[0] + p[1]), abs=1e-5)


class TestConcurrentLoading:
    def test_two_threads_share_one_load(self, tiny, monkeypatch):
        """Two screens asking a Solver for the same models at once load each file once."""
        import threading
        import time

        from specsearch.core import api
        from specsearch.core import llama_adapter as lla

        class SlowEngine(Engine):  # a slow load widens the window in which both threads look
            def __init__(self, *args, **kwargs):
                time.sleep(0.2)
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(api, "Engine", SlowEngine)
        before = lla.live_handles()["models"]
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"]) as s:
            start = threading.Barrier(2)
            got = []

            def load():
                start.wait()
                got.append(s.models("specsearch"))

            threads = [threading.Thread(target=load) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            a, b = got
            assert a.small is b.small and a.large is b.large and a.prm is b.prm
            assert a.speculative_decoder is b.speculative_decoder
            assert lla.live_handles()["models"] == before + 2  # draft (also the PRM) and target
        assert lla.live_handles()["models"] == before

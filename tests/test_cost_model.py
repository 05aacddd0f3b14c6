"""The thought-level cost model (core.cost_model): exact formulas on synthetic timings,
and its figures on a real tiny-model search."""

from __future__ import annotations

import math

import pytest

from specsearch.core.api import Solver
from specsearch.core.config import SearchConfig
from specsearch.core.cost_model import (
    Acceptance,
    Call,
    CostModel,
    DecodeCost,
    StepTiming,
    search_costs,
    step_timings,
)
from specsearch.core.tree import StepRecord, ThoughtNode


def timing(step, small=None, large=None, thoughts=4, scored=(0, 4), score=0.4, select=0.1, acc=0, rej=0):
    calls = {}
    if small:
        calls["small"] = Call(*small)
    if large:
        calls["large"] = Call(*large)
    # a scored thought is as long as its writer's thoughts in the step (10 tokens without a call)
    lengths = {m: (c.tokens / c.batch if c.batch else 0) for m, c in calls.items()}
    tokens = {m: round(n * lengths.get(m, 10)) for m, n in zip(("small", "large"), scored)}
    # the thoughts kept are as long as the step's calls' thoughts on average
    batch = sum(c.batch for c in calls.values())
    kept = round(thoughts * sum(c.tokens for c in calls.values()) / batch) if batch else 0
    return StepTiming(step, "specsearch", calls, thoughts, dict(zip(("small", "large"), scored)), score, select,
                      acc, rej, tokens, kept_tokens=kept)


class TestAcceptance:
    def test_beta_posterior_mean_and_std(self):
        a = Acceptance(3, 1)  # Beta(4, 2)
        assert a.mean == pytest.approx(4 / 6)
        assert a.std == pytest.approx(math.sqrt(4 * 2 / (36 * 7)))
        assert Acceptance().mean == 0.5

    def test_wilson_interval(self):
        lo, hi = Acceptance(8, 2).wilson()
        z = 1.959963984540054
        n, p = 10, 0.8
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert (lo, hi) == pytest.approx((centre - half, centre + half))
        assert Acceptance().wilson() == (0.0, 1.0)
        assert Acceptance(0, 5).wilson()[0] == 0.0


class TestDecodeCost:
    def test_one_batch_size_is_constant_throughput(self):
        cost = DecodeCost([Call(4, 40, 2.0), Call(4, 60, 3.0)])  # 20 tokens/s, 12.5 tokens a thought
        assert cost.a is None
        assert cost.thought_tokens == 12.5
        assert cost.call_seconds(2) == pytest.approx(2 * 12.5 / 20)
        assert cost.call_seconds(3, thought_tokens=10) == pytest.approx(1.5)

    def test_two_batch_sizes_fit_step_time(self):
        # decode step = 0.05 + 0.01 * batch seconds; thoughts of 10 tokens
        calls = [Call(n, 10 * n, 10 * (0.05 + 0.01 * n)) for n in (1, 4, 8)]
        cost = DecodeCost(calls)
        assert (cost.a, cost.b) == pytest.approx((0.05, 0.01))
        assert cost.call_seconds(6) == pytest.approx(10 * (0.05 + 0.06))

    def test_decreasing_step_time_falls_back_to_throughput(self):
        cost = DecodeCost([Call(1, 10, 1.0), Call(8, 80, 0.5)])  # bigger batches faster per step: not a cost
        assert cost.a is None
        assert cost.call_seconds(1) == pytest.approx(10 * 1.5 / 90)

    def test_prefill_is_fitted_apart_from_decoding(self):
        # seconds = 0.002 * prefill + length * (0.05 + 0.01 * batch)
        shapes = [(1, 10, 0), (2, 12, 40), (4, 8, 10), (8, 10, 100), (3, 11, 7), (6, 9, 60)]
        calls = [Call(n, n * l, 0.002 * p + l * (0.05 + 0.01 * n), p) for n, l, p in shapes]
        cost = DecodeCost(calls)
        assert (cost.prefill_seconds, cost.a, cost.b) == pytest.approx((0.002, 0.05, 0.01))
        length = cost.thought_tokens
        assert cost.call_seconds(5) == pytest.approx(length * (0.05 + 0.05))
        assert cost.call_seconds(5, prefill=20) == pytest.approx(length * 0.1 + 0.04)
        assert cost.prefill_per_thought == pytest.approx(217 / 24)

    def test_too_few_calls_fold_prefill_into_decoding(self):
        cost = DecodeCost([Call(4, 40, 2.0, 100), Call(2, 20, 1.5, 10)])  # 2 calls: no room for a prefill term
        assert cost.prefill_seconds == 0.0 and cost.a is not None

    def test_unknown_costs_nothing(self):
        assert not DecodeCost([]).known
        assert DecodeCost([]).call_seconds(4) == 0.0


class TestPrediction:
    def model(self, decay=1.0):
        # Two steps after a search's first (a first step's scoring also reads the question, so it is not fitted):
        # step 2: large writes 4 thoughts (40 tokens in 4 s); step 3: small drafts 4 (40 tokens in 1 s),
        # 1 accepted, 3 rewritten by the large model (30 tokens in 3.5 s); scoring 0.05 s a draft,
        # 0.01 s a token of a large-model thought; select 0.1 s
        return CostModel([
            timing(2, large=(4, 40, 4.0), scored=(0, 4), score=0.4),
            timing(3, small=(4, 40, 1.0), large=(3, 30, 3.5), scored=(4, 3), score=0.5, acc=1, rej=3),
        ], decay)

    def test_fitted_quantities(self):
        m = self.model()
        assert m.ready
        assert (m.score_per_draft, m.score_per_large_token) == pytest.approx((0.05, 0.01))
        assert m.thought_tokens == pytest.approx(80 / 8)  # the thoughts kept, 4 a step
        assert m.overhead == pytest.approx(0.1)
        assert m.acceptance.mean == pytest.approx(2 / 6)
        # large: 10 decode steps a call; 0.4 s a step at batch 4, 0.35 s at batch 3
        assert (m.large.a, m.large.b) == pytest.approx((0.2, 0.05))

    def test_step_formulas(self):
        m = self.model()
        n, p = 4, 2 / 6
        length = 10  # tokens of a thought kept (80 in 8)
        ar = length * (0.2 + 0.05 * n) + 0.01 * n * length + 0.1
        rewrite = length * (0.2 * (1 - p ** n) + 0.05 * (1 - p) * n)
        ss = 40 / 40 * 1.0 + 0.05 * n + rewrite + 0.01 * (1 - p) * n * length + 0.1
        pred = m.predict_step(n)
        assert pred.ar_seconds == pytest.approx(ar)
        assert pred.specsearch_seconds == pytest.approx(ss)
        assert pred.ratio == pytest.approx(ar / ss)
        assert m.ceiling_step_seconds(n) == pytest.approx(1.0 + 0.1)

    def test_rewrites_pay_their_prefill_and_ar_does_not(self):
        m = self.model()
        plain = m.specsearch_seconds(4, acceptance=0.5)
        m.large.prefill_seconds, m.rewrite_prefill = 0.01, 30.0
        ar = m.ar_seconds(4)
        assert m.specsearch_seconds(4, acceptance=0.5) == pytest.approx(plain + 0.01 * 30 * 0.5 * 4)
        assert m.ar_seconds(4) == ar == pytest.approx(10 * (0.2 + 0.05 * 4) + 0.1 * 4 + 0.1)

    def test_acceptance_extremes_order_the_methods(self):
        m = self.model()
        assert m.specsearch_seconds(4, acceptance=0.0) > m.ar_seconds(4)  # drafting is pure cost
        assert m.specsearch_seconds(4, acceptance=1.0) < m.ar_seconds(4)  # drafts at 4x the speed

    def test_decay_weighs_recent_steps_more(self):
        steps = [timing(1, small=(4, 40, 1.0), acc=4), timing(2, small=(4, 40, 1.0), rej=4)]
        assert CostModel(steps).acceptance.mean == pytest.approx(0.5)
        recent = CostModel(steps, decay=0.5).acceptance
        assert (recent.accepted, recent.rejected) == (2.0, 4.0)

    def test_scoring_is_fitted_on_steps_after_the_first(self):
        # Steps 2-4 score at exactly 0.002 s a draft and 0.005 s a large-model token; step 1 also reads the
        # question (0.6 s more), once a search: fitting it would misprice every later step.
        def scored_step(step, drafts, large_tokens):
            t = timing(step, small=(drafts, 60 * drafts, 1.0) if drafts else None, large=(8, large_tokens, 4.0),
                       scored=(drafts, 8))
            t.scored_tokens = {"small": 60 * drafts, "large": large_tokens}
            t.score_seconds = 0.002 * drafts + 0.005 * large_tokens + (0.6 if step == 1 else 0.0)
            return t
        steps = [scored_step(1, 0, 160), scored_step(2, 8, 500), scored_step(3, 4, 620), scored_step(4, 8, 160)]
        m = CostModel(steps)
        assert (m.score_per_draft, m.score_per_large_token) == pytest.approx((0.002, 0.005))
        assert CostModel(steps[:1]).score_per_large_token == pytest.approx(0.6 / 160 + 0.005)  # nothing later

    def test_a_fit_that_cannot_tell_writers_apart_prices_large_tokens(self):
        # Every later step scores 8 drafts beside large-model thoughts (drafts nearly free: the reward model
        # reads them from its cache), with noise that makes the fitted draft cost negative: the steps' large
        # tokens carry their scoring time (not the drafts' tokens too, which halved the price of ar's scoring).
        def scored_step(step, large_tokens, seconds):
            t = timing(step, small=(8, 480, 4.0), large=(8, large_tokens, 14.0), scored=(8, 8))
            t.scored_tokens, t.score_seconds = {"small": 480, "large": large_tokens}, seconds
            return t
        steps = [scored_step(2, 496, 2.46), scored_step(3, 616, 3.51), scored_step(4, 160, 0.70)]
        m = CostModel(steps)
        assert (m.score_per_draft, m.score_per_large_token) == pytest.approx((0.0, (2.46 + 3.51 + 0.70) / 1272))
        # steps that scored drafts alone (all accepted) price a draft
        alone = timing(5, small=(8, 480, 4.0), scored=(8, 0), score=0.08)
        m = CostModel(steps + [alone])
        assert (m.score_per_draft, m.score_per_large_token) == pytest.approx((0.01, (2.46 + 3.51 + 0.70) / 1272))
        # with no large-model thought scored, every token is priced alike
        drafts_only = CostModel([timing(2, small=(4, 40, 1.0), scored=(4, 0), score=0.4),
                                 timing(3, small=(4, 40, 1.0), scored=(4, 0), score=0.4)])
        assert (drafts_only.score_per_draft, drafts_only.score_per_large_token) == pytest.approx((0.1, 0.01))

    def test_scoring_a_large_thought_costs_by_its_length(self):
        m = self.model()
        assert m.ar_seconds(4, length=20) - m.ar_seconds(4, length=10) == pytest.approx(
            m.large.call_seconds(4, 20) - m.large.call_seconds(4, 10) + 0.01 * 4 * 10)

    def test_not_ready_without_drafts(self):
        assert not CostModel([timing(1, large=(4, 40, 4.0))]).ready


def node(i, depth, source, fate, tokens, seconds, score=0.5):
    return ThoughtNode(i, None, depth, "t", tokens, source, fate, score=score, seconds=seconds)


class TestFromTree:
    def tree(self):
        nodes = [node(0, 1, "large", "generated", 10, 1.0), node(1, 1, "large", "generated", 14, 1.0),
                 node(2, 2, "small", "accepted", 8, 0.25), node(3, 2, "small", "rejected", 12, 0.25),
                 node(4, 2, "large", "regenerated", 9, 1.5, score=0.7)]
        steps = [StepRecord(1, None, phase_seconds={"score": 0.2, "select": 0.01}, generator="specsearch"),
                 StepRecord(2, 0.5, accepted=[2], rejected=[3], regenerated=[4],
                            phase_seconds={"score": 0.3, "select": 0.01}, generator="specsearch")]
        return nodes, steps

    def test_step_timings(self):
        t1, t2 = step_timings(*self.tree())
        assert t1.calls == {"large": Call(2, 24, 2.0)} and t1.thoughts == 2 and t1.scored == {"small": 0, "large": 2}
        assert t1.scored_tokens == {"small": 0, "large": 24} and t2.scored_tokens == {"small": 20, "large": 9}
        assert t2.calls == {"small": Call(2, 20, 0.5), "large": Call(1, 9, 1.5)}
        assert (t2.thoughts, t2.scored, t2.accepted, t2.rejected) == (2, {"small": 2, "large": 1}, 1, 1)
        assert t2.thought_tokens == pytest.approx((8 + 9) / 2)  # the thoughts kept: not the rejected draft's 12
        assert t2.seconds == pytest.approx(0.5 + 1.5 + 0.3 + 0.01)

    def test_search_costs(self):
        nodes, steps = self.tree()
        wall = 5.0
        costs = search_costs(nodes, steps, wall)
        model = CostModel(step_timings(nodes, steps))
        outside = wall - (2.0 + 0.2 + 0.01) - (0.5 + 1.5 + 0.3 + 0.01)
        assert model.thought_tokens == pytest.approx((10 + 14 + 8 + 9) / 4)  # kept: not the rejected draft's 12
        # step 1, written whole by the large model, is an ar step as measured; step 2 is predicted with the
        # length of the thoughts it kept (an accepted draft of 8 tokens, a rewrite of 9)
        assert costs.predicted_ar_seconds == pytest.approx(outside + (2.0 + 0.2 + 0.01) + model.ar_seconds(2, 8.5))
        assert costs.ceiling_seconds == pytest.approx(outside + model.small.call_seconds(2, 12) + 0.01
                                                      + model.small.call_seconds(2, 8.5) + 0.01)
        # scoring, fitted on step 2 alone (step 1 also read the question): one step cannot split 0.3 s between
        # 2 drafts and a large thought of 9 tokens, so the large-model tokens carry it
        assert (model.score_per_draft, model.score_per_large_token) == pytest.approx((0.0, 0.3 / 9))

    def test_a_trial_step_is_priced_by_the_thoughts_it_kept(self):
        # auto's trial at step 2: two drafts of 30 tokens judged (not kept), the large model writes both thoughts
        # (6 tokens each).  Its length is the large model's thoughts', in the ar counterpart and the ceiling alike.
        nodes = [node(0, 1, "large", "generated", 10, 1.0), node(1, 1, "large", "generated", 14, 1.0),
                 node(2, 2, "small", "accepted", 30, 0.5), node(3, 2, "small", "rejected", 30, 0.5),
                 node(4, 2, "large", "generated", 6, 0.5), node(5, 2, "large", "generated", 6, 0.5)]
        steps = [StepRecord(1, None, phase_seconds={"score": 0.2, "select": 0.01}, generator="ar", first_node=0),
                 StepRecord(2, 0.5, accepted=[2], rejected=[3], phase_seconds={"score": 0.3, "select": 0.01},
                            generator="ar", first_node=2, trial=True)]
        t1, t2 = step_timings(nodes, steps)
        assert t2.trial and t2.thoughts == 2 and (t2.accepted, t2.rejected) == (1, 1)
        assert t2.thought_tokens == pytest.approx(6.0)  # not (60 + 12) / 4: the drafts were not the step's thoughts
        model = CostModel([t1, t2])
        wall = 6.0
        outside = wall - t1.seconds - t2.seconds
        costs = search_costs(nodes, steps, wall)
        assert costs.predicted_ar_seconds == pytest.approx(outside + t1.seconds + model.ar_seconds(2, 6.0))
        assert costs.ceiling_seconds == pytest.approx(outside + model.ceiling_step_seconds(2, 12.0)
                                                      + model.ceiling_step_seconds(2, 6.0))

    def test_steps_at_one_depth_split_its_nodes_by_first_node(self):
        # MCTS: two expansions at depth 2 (nodes 2-3, then 4-5), each its own step
        nodes = [node(0, 1, "large", "generated", 10, 1.0), node(1, 1, "large", "generated", 14, 1.0),
                 node(2, 2, "large", "generated", 8, 0.5), node(3, 2, "large", "generated", 12, 0.5),
                 node(4, 2, "large", "generated", 20, 0.7), node(5, 2, "large", "generated", 30, 0.7)]
        steps = [StepRecord(1, None, first_node=0), StepRecord(2, None, first_node=2),
                 StepRecord(2, None, first_node=4)]
        t1, t2, t3 = step_timings(nodes, steps)
        assert (t1.thoughts, t2.thoughts, t3.thoughts) == (2, 2, 2)
        assert (t2.calls["large"], t3.calls["large"]) == (Call(2, 20, 1.0), Call(2, 50, 1.4))
        assert (t2.scored_tokens["large"], t3.scored_tokens["large"]) == (20, 50)
        # records without first_node (saved before it existed) fall back to the depth
        old = [StepRecord(1, None), StepRecord(2, None), StepRecord(2, None)]
        assert [t.thoughts for t in step_timings(nodes, old)] == [2, 4, 4]

    def test_recorded_calls_win_over_nodes(self):
        nodes, steps = self.tree()
        steps[1].calls = [{"model": "small", "batch": 2, "tokens": 20, "prefill": 30, "seconds": 0.6},
                          {"model": "large", "batch": 1, "tokens": 9, "prefill": 12, "seconds": 1.4},
                          {"model": "large", "batch": 1, "tokens": 5, "seconds": 0.5}]  # no prefill: an old record
        t2 = step_timings(nodes, steps)[1]
        assert t2.calls == {"small": Call(2, 20, 0.6, 30), "large": Call(2, 14, 1.9, 12)}

    def test_no_large_thoughts_no_prediction(self):
        nodes = [node(0, 1, "small", "generated", 8, 0.25)]
        costs = search_costs(nodes, [StepRecord(1, None, generator="small")], 1.0)
        assert costs.predicted_ar_seconds is None and costs.ceiling_seconds is None


class TestOnATinySearch:
    def test_a_specsearch_run_carries_predictions(self, tiny):
        config = SearchConfig(method="specsearch", max_depth=3, max_step_tokens=12, children=3, beam_width=2,
                              seed=7, temperature=0.9)
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"]) as solver:
            result = solver.solve("Tom has 3 apples and buys 4 more. How many?", config)
        stats = result.stats
        assert [s.generator for s in result.steps] == ["specsearch"] * len(result.steps)
        expected = search_costs(result.nodes, result.steps, stats.wall_seconds)
        assert stats.predicted_ar_seconds == pytest.approx(expected.predicted_ar_seconds)
        assert stats.ceiling_seconds == pytest.approx(expected.ceiling_seconds)
        assert stats.predicted_speedup == pytest.approx(stats.predicted_ar_seconds / stats.wall_seconds)
        assert 0 < stats.predicted_speedup < 100
        saved = result.to_dict()["stats"]
        assert saved["predicted_speedup"] == pytest.approx(stats.predicted_speedup)
        assert saved["ceiling_speedup"] == pytest.approx(stats.ceiling_speedup)

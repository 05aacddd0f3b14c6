"""Hidden states from the engine, learned PRM heads, and `prm train`, on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from specsearch.cli.main import main as cli_main
from specsearch.core.engine import Engine, HiddenRequest, LoadOptions, ScoreRequest
from specsearch.core.prm import make_prm
from specsearch.core.prm_head import Head, HeadError, HeadPRM, file_sha256, load_head_prm
from specsearch.core.prm_train import FitConfig, extract_features, train_head
from specsearch.core.processbench import ProcessItem

QUESTION = "the cat has 12 mats and 2 more"
STEPS = ["the cat is on the mat", "12 + 2 = 14 mats", "yes the answer is 14"]


@pytest.fixture(scope="module")
def engine(tiny) -> Engine:
    with Engine(tiny["target"], LoadOptions(n_ctx=1024, batch_invariant=True)) as e:
        yield e


def random_head(engine: Engine, features=("hidden",), seed: int = 0, **kw) -> Head:
    rng = np.random.default_rng(seed)
    width = engine.facts.n_embd * ("hidden" in features) + sum(f != "hidden" for f in features)
    return Head(
        backbone_sha256=file_sha256(engine.path), hidden_size=engine.facts.n_embd, features=tuple(features),
        layers=[(rng.normal(0, 0.3, (width, 1)), np.zeros(1))], mean=np.zeros(width), scale=np.ones(width), **kw,
    )


class TestHiddenStates:
    def test_same_with_and_without_prefix_reuse(self, engine):
        toks = engine.tokenize("the cat is on the mat and 12 + 2 = 14 yes no", add_special=False)
        req = HiddenRequest(toks, [4, 9, len(toks) - 1], logprob_from=2)
        warm = engine.hidden_states([req])[0]
        again = engine.hidden_states([req])[0]  # now served from the cached prefix
        cold = engine.hidden_states([req], reuse=False)[0]
        assert warm.hidden.shape == (3, engine.facts.n_embd)
        np.testing.assert_allclose(again.hidden, cold.hidden, atol=1e-4)
        np.testing.assert_allclose(warm.hidden, cold.hidden, atol=1e-4)
        np.testing.assert_allclose(warm.token_logprobs, cold.token_logprobs, atol=1e-4)

    def test_a_position_does_not_depend_on_later_tokens(self, engine):
        toks = engine.tokenize("the cat is on the mat and 12 + 2 = 14", add_special=False)
        full = engine.hidden_states([HiddenRequest(toks, [6, len(toks) - 1])], reuse=False)[0]
        short = engine.hidden_states([HiddenRequest(toks[:7], [6])], reuse=False)[0]
        np.testing.assert_allclose(full.hidden[0], short.hidden[0], atol=1e-4)
        assert not np.allclose(full.hidden[0], full.hidden[1])

    def test_token_logprobs_equal_the_scoring_log_softmax(self, engine):
        toks = engine.tokenize("the cat is on the mat and 12 + 2 = 14 yes", add_special=False)
        res = engine.hidden_states([HiddenRequest(toks, [5, 8], logprob_from=3)], reuse=False)[0]
        rows = engine.score([ScoreRequest(toks, list(range(2, len(toks) - 1)), list(range(engine.n_vocab)))])[0]
        expected = [rows[t - 3, toks[t]] for t in range(3, len(toks))]
        assert len(res.token_logprobs) == len(toks) - 3
        np.testing.assert_allclose(res.token_logprobs, expected, atol=1e-4)

    def test_siblings_batched_equal_alone(self, engine):
        a = engine.tokenize("the cat is on the mat", add_special=False)
        b = engine.tokenize("the cat is on 12 mats", add_special=False)
        both = engine.hidden_states([HiddenRequest(a, [len(a) - 1]), HiddenRequest(b, [2, len(b) - 1])])
        alone = engine.hidden_states([HiddenRequest(b, [2, len(b) - 1])], reuse=False)[0]
        np.testing.assert_allclose(both[1].hidden, alone.hidden, atol=1e-4)

    def test_bad_positions_are_rejected(self, engine):
        toks = engine.tokenize("the cat", add_special=False)
        with pytest.raises(ValueError):
            engine.hidden_states([HiddenRequest(toks, [1, 0])])
        with pytest.raises(ValueError):
            engine.hidden_states([HiddenRequest(toks, [len(toks)])])


class TestHeadPRM:
    def test_scores_are_the_head_applied_to_the_step_end_states(self, engine):
        head = random_head(engine)
        prm = HeadPRM(engine, head)
        lay = prm.layout(QUESTION, STEPS)
        hidden = engine.hidden_states([HiddenRequest(lay.tokens, lay.ends)], reuse=False)[0].hidden
        expected = 1 / (1 + np.exp(-(hidden.astype(np.float64) @ head.layers[0][0])[:, 0]))
        np.testing.assert_allclose(prm.score(QUESTION, STEPS), expected, atol=1e-4)

    @pytest.mark.parametrize("features", [("hidden",), ("hidden", "logprob_mean", "logprob_min", "log_tokens")])
    def test_score_equals_score_last_per_prefix(self, engine, features):
        prm = HeadPRM(engine, random_head(engine, features))
        whole = prm.score(QUESTION, STEPS)
        last = prm.score_last(QUESTION, [STEPS[: i + 1] for i in range(len(STEPS))])
        np.testing.assert_allclose(whole, last, atol=1e-4)
        assert all(0.0 <= s <= 1.0 for s in whole)

    def test_head_file_round_trip(self, engine, tmp_path):
        head = random_head(engine, ("hidden", "logprob_min"), meta={"trained_on": ["x"]})
        head.save(tmp_path / "h.npz")
        loaded = Head.load(tmp_path / "h.npz")
        assert loaded.features == head.features and loaded.meta["trained_on"] == ["x"]
        x = np.random.default_rng(1).normal(size=(5, head.n_features))
        np.testing.assert_allclose(loaded.predict(x), head.predict(x), rtol=1e-5)

    def test_head_for_another_backbone_is_a_one_line_error(self, engine, tiny):
        head = random_head(engine)
        with Engine(tiny["draft"], LoadOptions(n_ctx=256)) as other:  # same size, other weights
            with pytest.raises(HeadError, match="trained on backbone"):
                HeadPRM(other, head)
        head.hidden_size += 1
        with pytest.raises(HeadError, match="hidden size"):
            HeadPRM(engine, head)

    def test_unreadable_head_files(self, engine, tmp_path):
        (tmp_path / "junk.npz").write_bytes(b"not a zip")
        with pytest.raises(HeadError, match="not a readable head file"):
            Head.load(tmp_path / "junk.npz")
        with pytest.raises(HeadError, match="does not exist"):
            Head.load(tmp_path / "missing.npz")
        head = random_head(engine)
        head.layers = [(np.zeros((3, 1)), np.zeros(1))]
        head.save(tmp_path / "bad.npz")
        with pytest.raises(HeadError, match="layer shapes"):
            Head.load(tmp_path / "bad.npz")

    def test_kind_head_without_a_shipped_head_says_how_to_get_one(self, engine):
        with pytest.raises(HeadError, match="prm train"):
            load_head_prm(engine, None)

    def test_kind_head_by_file(self, engine, tmp_path):
        random_head(engine).save(tmp_path / "h.npz")
        prm = make_prm("head", engine, head=str(tmp_path / "h.npz"))
        assert len(prm.score(QUESTION, STEPS)) == len(STEPS)


def marked_items(n: int) -> list[ProcessItem]:
    """Items whose wrong steps carry a marker word the backbone's states can pick up."""
    rng = np.random.default_rng(0)
    words = ["the cat", "is on", "the mat", "and 12", "+ 2 = 14", "yes", "then 3 mats"]
    items = []
    for i in range(n):
        steps = [" ".join(rng.choice(words, 3)) for _ in range(3)]
        label = int(rng.integers(0, 3)) if i % 2 else -1
        if label >= 0:
            steps[label] = "zzzz qqqq " + steps[label]
        items.append(ProcessItem(str(i), "the cat has 12 mats", tuple(steps), label, label < 0))
    return items


def write_items(path: Path, items: list[ProcessItem]) -> Path:
    """``items`` as a ProcessBench-format JSON file."""
    path.write_text(json.dumps([
        {"id": it.id, "problem": it.problem, "steps": list(it.steps), "label": it.label,
         "final_answer_correct": it.final_answer_correct} for it in items
    ]))
    return path


class TestTraining:
    def test_a_trained_head_separates_marked_steps_on_held_out_items(self, engine):
        items = marked_items(60)
        feats = extract_features(engine, items, ["hidden"])
        assert len(feats.y) == sum(len(it.judged_steps) for it in items)
        report = train_head(engine, feats, items, ["hidden"], FitConfig(l2=1e-3, epochs=200), held_out=0.3)
        assert report.val_auroc is not None and report.val_auroc > 0.9
        # The calibrated head scores the same through the PRM as in training.
        prm = HeadPRM(engine, report.head)
        it = items[1]
        np.testing.assert_allclose(prm.score(it.problem, list(it.judged_steps)),
                                   report.head.predict(feats.x[feats.item == 1]), atol=1e-4)

    def test_cli_train_writes_a_head_that_prm_eval_can_use(self, tiny, tmp_path, capsys):
        data = write_items(tmp_path / "items.json", marked_items(24))
        out = tmp_path / "head.npz"
        code = cli_main(["prm", "train", "--backbone", str(tiny["target"]), "--data", str(data),
                         "--out", str(out), "--features", "hidden", "--json"])
        assert code == 0
        report = json.loads(capsys.readouterr().out)
        assert report["items"] == 24 and Path(report["out"]) == out and out.exists()
        code = cli_main(["prm", "eval", "--prm", str(tiny["target"]), "--prm-kind", "head", "--head", str(out),
                         "--data", str(data), "--calibrate", str(data), "--json"])
        assert code == 0
        result = json.loads(capsys.readouterr().out)
        assert result["items"] == 24 and 0.0 <= result["auroc"] <= 1.0

    def test_cli_train_rejects_unknown_features(self, tiny, tmp_path, capsys):
        code = cli_main(["prm", "train", "--backbone", str(tiny["target"]), "--data", "gsm8k",
                         "--out", str(tmp_path / "h.npz"), "--features", "hidden,nope"])
        assert code == 2
        assert "unknown features" in capsys.readouterr().err


class TestScoringTheSearchsTokens:
    def test_a_draft_costs_one_token_and_scores_as_a_fresh_pass(self, engine):
        from specsearch.core.config import SearchConfig
        from specsearch.core.sampling import SamplingParams

        prm = HeadPRM(engine, random_head(engine))
        config = SearchConfig()
        assert prm.reads_tokens_of(engine, config.system_prompt, config.delimiter)
        assert not prm.reads_tokens_of(engine, "another system prompt", config.delimiter)
        prompt = prm.layout(QUESTION, STEPS[:1]).tokens
        out = engine.generate([prompt], 3, max_tokens=12, sampling=SamplingParams(0.9, 40, 0.95, 0.0),
                              stop=["\n\n"], logprobs=False)
        paths = [prompt + g.tokens for g in out.generations]
        starts = [len(prompt)] * len(paths)
        before = engine.decoded_tokens
        warm = prm.score_tokens(paths, starts)
        assert engine.decoded_tokens - before == len(paths)  # only each draft's last token
        engine.reset_cache()
        cold = prm.score_tokens(paths, starts)
        np.testing.assert_allclose(warm, cold, atol=1e-4)

    def test_token_path_equals_text_path_when_tokens_agree(self, engine):
        prm = HeadPRM(engine, random_head(engine, ("hidden", "logprob_mean", "logprob_min", "log_tokens")))
        lay = prm.layout(QUESTION, STEPS)
        by_tokens = prm.score_tokens([lay.tokens], [lay.starts[-1]])
        by_text = prm.score_last(QUESTION, [STEPS])
        np.testing.assert_allclose(by_tokens, by_text, atol=1e-4)

    def test_a_search_scores_drafts_through_the_head(self, tiny, tmp_path):
        from specsearch.core.api import Solver
        from specsearch.core.config import SearchConfig

        with Engine(tiny["draft"], LoadOptions(n_ctx=256)) as e:
            random_head(e).save(tmp_path / "h.npz")
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"], prm_kind="head",
                    prm_head=tmp_path / "h.npz") as solver:
            config = SearchConfig(method="specsearch", max_depth=2, children=2, beam_width=1, max_step_tokens=8)
            result = solver.solve(QUESTION, config)
            scored = [n for n in result.nodes if n.score is not None]
            assert scored and all(0.0 <= n.score <= 1.0 for n in scored)
            assert any(n.source == "small" for n in scored)

    def test_drafters_logprobs_replace_a_second_pass(self, engine):
        from specsearch.core.sampling import SamplingParams

        head = random_head(engine, ("logprob_mean", "logprob_min", "digit_logprob_min", "log_tokens", "arith_flag"))
        prm = HeadPRM(engine, head)
        prompt = prm.layout(QUESTION, STEPS[:1]).tokens
        out = engine.generate([prompt], 3, max_tokens=12, sampling=SamplingParams(0.9, 40, 0.95, 0.0),
                              stop=["\n\n"], logprobs=True)
        paths = [prompt + g.tokens for g in out.generations]
        starts = [len(prompt)] * len(paths)
        texts = [g.text for g in out.generations]
        before = engine.decoded_tokens
        free = prm.score_tokens(paths, starts, texts, [g.logprobs for g in out.generations])
        assert engine.decoded_tokens == before  # no model work at all for a head without hidden states
        engine.reset_cache()
        recomputed = prm.score_tokens(paths, starts, texts)
        np.testing.assert_allclose(free, recomputed, atol=1e-4)


class TestFeatures:
    def test_a_step_without_numbers_gets_no_free_pass_on_digit_features(self, engine):
        from specsearch.core.prm_head import StepEvidence, _feature_row

        names = ["logprob_min", "logprob_mean", "low_fraction",
                 "digit_logprob_min", "digit_logprob_mean", "digit_low_fraction", "log_digit_tokens"]
        words = engine.tokenize("the cat is on the mat", add_special=False)
        lp = np.array([-0.1, -3.0, -0.5, -0.2, -4.0, -0.3])[: len(words)]
        row = _feature_row(names, StepEvidence(None, lp, words, "the cat is on the mat"), engine)
        assert row[3] == row[0] and row[4] == row[1] and row[5] == row[2] and row[6] == 0.0
        mixed = engine.tokenize("the 12 cats", add_special=False)
        lp2 = np.linspace(-0.5, -2.5, len(mixed))
        row2 = _feature_row(names, StepEvidence(None, lp2, mixed, "the 12 cats"), engine)
        digit_positions = [i for i, t in enumerate(mixed) if any(c.isdigit() for c in engine.vocab.piece(t).decode())]
        assert digit_positions and row2[3] == pytest.approx(lp2[digit_positions].min())
        assert row2[6] == pytest.approx(np.log1p(len(digit_positions)))


class TestShippedHeads:
    def test_a_model_no_head_fits_is_not_hashed(self, tiny):
        from specsearch.core import prm_head

        prm_head._sha_cache.clear()
        assert prm_head.shipped_head_for(tiny["alien"]) is None  # hidden size 64: the shipped head is 896
        assert not prm_head._sha_cache

    def test_auto_picks_a_head_shipped_for_the_backbone_else_the_judge(self, engine, tiny, tmp_path, monkeypatch):
        from specsearch.core import prm_head
        from specsearch.core.prm import JudgePRM

        random_head(engine).save(tmp_path / "h.npz")
        monkeypatch.setattr(prm_head, "shipped_heads", lambda: [tmp_path / "h.npz"])
        assert isinstance(make_prm("auto", engine), HeadPRM)
        with Engine(tiny["draft"], LoadOptions(n_ctx=256)) as other:
            assert isinstance(make_prm("auto", other), JudgePRM)

    def test_shipped_heads_load_and_read_no_length_or_counts(self):
        from specsearch.core.prm_head import SEARCH_SAFE_FEATURES, shipped_heads
        from specsearch.core.prm_reduce import CONFOUND_FEATURES

        heads = shipped_heads()
        assert heads, "the offline pack's 0.5B head must ship as package data"
        for path in heads:
            head = Head.load(path)
            assert set(head.features) <= {"hidden", *SEARCH_SAFE_FEATURES}
            if "hidden" in head.features:  # the hidden state knows length and counts: they must be erased
                assert head.meta["reduction"]["erased"] == list(CONFOUND_FEATURES)
            assert len(head.backbone_sha256) == 64 and head.meta.get("trained_on")


def record_handovers(monkeypatch) -> list[bool]:
    """Per thought a head scores from now on: were its log-probs handed over (not recomputed)?"""
    given: list[bool] = []
    original = HeadPRM.score_tokens

    def recording(self, paths, starts, texts=(), logprobs=None):
        given.extend(lp is not None for lp in (logprobs or [None] * len(paths)))
        return original(self, paths, starts, texts, logprobs)

    monkeypatch.setattr(HeadPRM, "score_tokens", recording)
    return given


class TestAHeadOnTheLargeModel:
    """A head whose backbone is the large model reads the log-probs the large model (through the
    speculative decoder) computed while writing, as a drafter's head reads the drafter's."""

    def _solve(self, tiny, tmp_path, hand_over: bool, monkeypatch):
        from specsearch.core import generators
        from specsearch.core.api import Solver
        from specsearch.core.config import SearchConfig

        if not hand_over:
            monkeypatch.setattr(generators, "_scores_from_writer", lambda state, prm, writer: False)
        given = record_handovers(monkeypatch)
        with Engine(tiny["target"], LoadOptions(n_ctx=256)) as e:
            random_head(e, ("logprob_mean", "logprob_min", "digit_logprob_min", "arith_flag")).save(tmp_path / "h.npz")
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["target"], prm_kind="head",
                    prm_head=tmp_path / "h.npz", batch_invariant=True) as solver:
            config = SearchConfig(method="specsearch", threshold_mode="fixed", fixed_beta=float("inf"), max_depth=3,
                                  children=2, beam_width=1, max_step_tokens=10, temperature=0.0)
            return solver.solve(QUESTION, config), given

    def test_regenerated_thoughts_score_as_a_fresh_pass_without_one(self, tiny, tmp_path, monkeypatch):
        handed, given = self._solve(tiny, tmp_path / "a", True, monkeypatch)
        monkeypatch.undo()
        fresh, recomputed = self._solve(tiny, tmp_path / "b", False, monkeypatch)
        scored = lambda r: [n for n in r.nodes if n.score is not None]
        large = lambda r: [n for n in scored(r) if n.source == "large"]
        assert len(large(handed)) >= 3
        # drafts (the small model's) are read anew by the large model; its own thoughts are not
        assert given == [n.source == "large" for n in scored(handed)]
        assert not any(recomputed)
        assert [n.text for n in large(handed)] == [n.text for n in large(fresh)]
        np.testing.assert_allclose([n.score for n in large(handed)], [n.score for n in large(fresh)], atol=1e-4)


class TestLargeThoughtsScoredFromTheirOwnLogprobs:
    """large_scores = own: a log-prob head on the drafter scores the large model's thoughts from
    the log-probs the large model computed writing them, as it scores drafts from the drafter's."""

    def _solve(self, tiny, tmp_path, mode: str, features, monkeypatch):
        from specsearch.core.api import Solver
        from specsearch.core.config import SearchConfig

        given = record_handovers(monkeypatch)
        with Engine(tiny["draft"], LoadOptions(n_ctx=256)) as e:
            random_head(e, features).save(tmp_path / "h.npz")
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"], prm_kind="head",
                    prm_head=tmp_path / "h.npz", batch_invariant=True) as solver:
            # ar with one child: the path does not depend on the scores, so both modes score the same thoughts
            config = SearchConfig(method="ar", max_depth=3, children=1, beam_width=1, max_step_tokens=10,
                                  temperature=0.0, large_scores=mode)
            result = solver.solve(QUESTION, config)
        monkeypatch.undo()
        return [n for n in result.nodes if n.score is not None], given

    def test_own_hands_over_the_large_models_log_probs_and_changes_the_scores(self, tiny, tmp_path, monkeypatch):
        features = ("logprob_mean", "logprob_min", "digit_logprob_min", "arith_flag")
        read, given_read = self._solve(tiny, tmp_path / "r", "read", features, monkeypatch)
        own, given_own = self._solve(tiny, tmp_path / "o", "own", features, monkeypatch)
        assert len(own) >= 3 and [n.text for n in own] == [n.text for n in read]
        assert given_own == [True] * len(own) and given_read == [False] * len(read)
        # the drafter reading a thought and the large model writing it give different log-probs
        assert max(abs(a.score - b.score) for a, b in zip(own, read)) > 1e-3

    def test_a_head_that_reads_hidden_states_still_reads(self, tiny, tmp_path, monkeypatch):
        own, given = self._solve(tiny, tmp_path / "h", "own", ("hidden", "logprob_mean"), monkeypatch)
        assert own and not any(given)

"""The llama.cpp engine on tiny generated models (real llama.cpp, no mocks)."""

from __future__ import annotations

import numpy as np
import pytest

from specsearch.core.engine import Engine, LoadOptions, ScoreRequest
from specsearch.core.errors import (
    ContextOverflowError,
    CorruptModelError,
    IncompatibleVocabError,
    ModelNotFoundError,
    NotGGUFError,
)
from specsearch.core.sampling import GREEDY, SamplingParams
from specsearch.core.speculative import SpeculativeDecoder

SAMPLED = SamplingParams(temperature=0.9, top_k=40, top_p=0.95, min_p=0.0)
TEXTS = ["the answer is 12 + 3 = ", "a cat sat on the mat", "x + 2 = 5, so x"]


# Token-for-token comparisons use batch-invariant numerics (f32 KV cache, no
# flash attention); with the default f16 cache, logits differ by ~1e-3
# depending on batch split, enough to flip a sampled token now and then.
EXACT = LoadOptions(batch_invariant=True)


@pytest.fixture
def target(tiny):
    with Engine(tiny["target"], EXACT) as engine:
        yield engine


def fresh_single(path, prompt, seed, sampling, max_tokens):
    with Engine(path, EXACT) as engine:
        return engine.generate([prompt], 1, max_tokens=max_tokens, sampling=sampling, seeds=[seed]).generations[0]


class TestBatchedGeneration:
    def test_n_sequences_equal_independent_runs(self, tiny, target):
        prompt = target.tokenize(TEXTS[0])
        seeds = [11, 12, 13, 14, 15]
        out = target.generate([prompt], n=5, max_tokens=40, sampling=SAMPLED, seeds=seeds)
        assert len({tuple(g.tokens) for g in out.generations}) > 1, "different seeds should differ"
        for seed, gen in zip(seeds, out.generations):
            single = fresh_single(tiny["target"], prompt, seed, SAMPLED, 40)
            assert gen.tokens == single.tokens
            assert gen.text == single.text
            assert np.allclose(gen.logprobs, single.logprobs, atol=1e-4)

    def test_several_prompts_times_n_equal_independent_runs(self, tiny, target):
        prompts = [target.tokenize(t) for t in TEXTS]
        seeds = list(range(100, 106))
        out = target.generate(prompts, n=2, max_tokens=30, sampling=SAMPLED, seeds=seeds)
        assert [g.prompt_index for g in out.generations] == [0, 0, 1, 1, 2, 2]
        for k, gen in enumerate(out.generations):
            single = fresh_single(tiny["target"], prompts[k // 2], seeds[k], SAMPLED, 30)
            assert gen.tokens == single.tokens

    def test_prompt_is_prefilled_once_and_all_sequences_step_together(self, target):
        prompt = target.tokenize(TEXTS[1])
        out = target.generate([prompt], n=8, max_tokens=25, sampling=SAMPLED, seeds=range(8))
        longest = max(len(g.tokens) for g in out.generations)
        # one prefill decode + one for the last prompt token + one per further step
        assert out.stats.decode_calls == 2 + (longest - 1)
        assert out.stats.prompt_tokens == len(prompt)

    def test_logprobs_are_log_softmax_of_the_model(self, tiny, target):
        prompt = target.tokenize(TEXTS[2])
        gen = target.generate([prompt], 1, max_tokens=12, sampling=SAMPLED, seeds=[3]).generations[0]
        full = prompt + gen.tokens
        positions = list(range(len(prompt) - 1, len(full) - 1))
        with Engine(tiny["target"], EXACT) as fresh:
            rows = fresh.score([ScoreRequest(full, positions, list(range(fresh.n_vocab)))], reuse=False)[0]
        expected = [rows[i, tok] for i, tok in enumerate(gen.tokens)]
        assert np.allclose(gen.logprobs, expected, atol=1e-4)


class TestStopping:
    def test_max_tokens(self, target):
        gen = target.generate(target.tokenize("abc"), max_tokens=7, sampling=SAMPLED, seeds=[1]).generations[0]
        assert gen.finish_reason in ("length", "eos")
        assert len(gen.tokens) <= 7

    def test_stop_string_cuts_text_and_ends_sequence(self, target):
        prompt = target.tokenize(TEXTS[0])
        free = target.generate(prompt, max_tokens=60, sampling=SAMPLED, seeds=[21]).generations[0]
        text = free.text
        assert len(text) > 6
        stop = text[3:5]  # a string the sequence is known to produce
        cut = target.generate(prompt, max_tokens=60, sampling=SAMPLED, seeds=[21], stop=[stop]).generations[0]
        assert cut.finish_reason == "stop"
        assert cut.text == text[: text.index(stop)]
        assert cut.tokens == free.tokens[: len(cut.tokens)]

    def test_end_of_generation_token(self, target):
        for seed in range(40):
            gen = target.generate(target.tokenize("q"), max_tokens=200, sampling=SAMPLED, seeds=[seed]).generations[0]
            if gen.finish_reason == "eos":
                assert target.is_eog(gen.tokens[-1])
                return
        pytest.fail("no sequence reached the end-of-generation token in 40 seeds")


class TestCancel:
    def test_should_stop_ends_every_sequence_within_one_step(self, target):
        polls = []

        def should_stop():
            polls.append(1)
            return len(polls) >= 5

        out = target.generate(target.tokenize("abc"), 3, max_tokens=100, sampling=SAMPLED, seeds=[1, 2, 3],
                              should_stop=should_stop)
        assert {g.finish_reason for g in out.generations} <= {"cancelled", "eos", "stop"}
        assert max(len(g.tokens) for g in out.generations) <= 5
        again = target.generate(target.tokenize("abc"), 1, max_tokens=10, sampling=SAMPLED, seeds=[1])
        assert again.generations[0].tokens[:5] == out.generations[0].tokens[:5]


class TestPrefixReuse:
    def test_generation_after_reuse_equals_fresh_prefill(self, tiny, target):
        base = target.tokenize("the answer is 12 + 3 = 15 and the next")
        target.generate(base, 3, max_tokens=20, sampling=SAMPLED, seeds=[1, 2, 3])
        longer = base + target.tokenize(" step is")
        out = target.generate(longer, 2, max_tokens=30, sampling=SAMPLED, seeds=[7, 8])
        assert out.stats.reused_tokens >= len(base) - 1
        for seed, gen in zip([7, 8], out.generations):
            assert gen.tokens == fresh_single(tiny["target"], longer, seed, SAMPLED, 30).tokens

    def test_prompts_sharing_a_prefix_count_it_as_read_once(self, target):
        # Children of one beam are the same prompt: read once, then one last token each.
        prompt = target.tokenize(TEXTS[1])
        target.reset_cache()
        cold = target.generate([prompt] * 3, 1, max_tokens=2, sampling=GREEDY).stats
        assert cold.prompt_tokens - cold.reused_tokens == (len(prompt) - 1) + 3
        warm = target.generate([prompt] * 3, 1, max_tokens=2, sampling=GREEDY).stats
        assert warm.prompt_tokens - warm.reused_tokens == 3

    def test_continuing_a_generated_sequence_reuses_its_cache(self, tiny, target):
        prompt = target.tokenize(TEXTS[1])
        first = target.generate(prompt, 1, max_tokens=20, sampling=GREEDY).generations[0]
        cont = prompt + first.tokens
        out = target.generate(cont, 1, max_tokens=15, sampling=GREEDY)
        assert out.stats.reused_tokens == len(cont) - 1
        assert out.generations[0].tokens == fresh_single(tiny["target"], cont, 0, GREEDY, 15).tokens

    def test_small_cache_evicts_lru_and_stays_correct(self, tiny):
        with Engine(tiny["target"], LoadOptions(n_ctx=256, n_seq_max=8, batch_invariant=True)) as small:
            for i in range(12):
                prompt = small.tokenize(f"problem {i}: the answer is {i * 7}")
                gen = small.generate(prompt, 4, max_tokens=24, sampling=SAMPLED, seeds=[i, i + 1, i + 2, i + 3])
                ref = fresh_single(tiny["target"], prompt, i + 2, SAMPLED, 24)
                assert gen.generations[2].tokens == ref.tokens


class TestScoring:
    def test_scores_equal_fresh_full_evaluation(self, tiny, target):
        question = target.tokenize("Q: 3 + 4 = ? steps:")
        steps = [target.tokenize(s) for s in [" 3 plus 4 is 7.", " 3 + 4 = 8", " is 7", " no idea at all"]]
        candidates = [target.tokenize(" yes")[0], target.tokenize(" no")[0], 42]
        requests = []
        for s in steps:
            toks = question + s
            requests.append(ScoreRequest(toks, [len(question) - 1, len(toks) - 1], candidates))
        reused = target.score(requests)
        for req, got in zip(requests, reused):
            with Engine(tiny["target"], EXACT) as fresh:
                expect = fresh.score([req], reuse=False)[0]
            assert got.shape == (2, 3)
            assert np.allclose(got, expect, atol=1e-4)
        # the shared question was evaluated once and reused by every sibling
        again = target.score(requests)
        assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(again, reused))

    def test_scores_are_normalised_log_probs(self, target):
        toks = target.tokenize("some text here")
        all_ids = list(range(target.n_vocab))
        rows = target.score([ScoreRequest(toks, [0, len(toks) - 1], all_ids)])[0]
        assert np.allclose(np.exp(rows).sum(axis=1), 1.0, atol=1e-5)


class TestSpeculative:
    @pytest.mark.parametrize("adaptive", [False, True])
    def test_greedy_equals_target_greedy_with_different_draft(self, tiny, target, adaptive):
        with Engine(tiny["draft"], EXACT) as draft:
            prompts = [target.tokenize(t) for t in TEXTS]
            ref = target.generate(prompts, 2, max_tokens=50, sampling=GREEDY)
            spec = SpeculativeDecoder(target, draft, k=4, adaptive=adaptive)
            out = spec.generate(prompts, 2, max_tokens=50, sampling=GREEDY)
            assert [g.tokens for g in out.generations] == [g.tokens for g in ref.generations]
            assert [g.text for g in out.generations] == [g.text for g in ref.generations]
            assert out.stats.drafted > 0 or adaptive
            assert out.stats.acceptance_rate is None or out.stats.acceptance_rate < 1.0

    def test_greedy_emits_the_targets_argmax_of_a_fresh_evaluation(self, tiny, target):
        with Engine(tiny["draft"], EXACT) as draft:
            prompt = target.tokenize(TEXTS[2])
            gen = SpeculativeDecoder(target, draft, k=3, adaptive=False).generate(
                prompt, 1, max_tokens=30, sampling=GREEDY).generations[0]
        full = prompt + gen.tokens
        with Engine(tiny["target"], EXACT) as fresh:
            rows = fresh.score([ScoreRequest(full, list(range(len(prompt) - 1, len(full) - 1)),
                                             list(range(fresh.n_vocab)))], reuse=False)[0]
        assert gen.tokens == [int(np.argmax(row)) for row in rows]

    def test_identical_draft_accepts_everything(self, tiny, target):
        with Engine(tiny["twin"], EXACT) as twin:
            spec = SpeculativeDecoder(target, twin, k=4, adaptive=False)
            prompt = target.tokenize(TEXTS[0])
            out = spec.generate(prompt, 3, max_tokens=40, sampling=GREEDY)
            assert out.stats.drafted > 0
            assert out.stats.acceptance_rate == 1.0
            # 4 drafts + 1 bonus per target pass
            assert out.stats.target_passes <= -(-40 // 5) + 1

    def test_sampling_first_token_follows_target_distribution(self, tiny, target):
        from scipy.stats import chisquare

        params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
        prompt = target.tokenize("the cat")
        with Engine(tiny["draft"], EXACT) as draft:
            p = np.exp(target.score([ScoreRequest(prompt, [len(prompt) - 1], range(target.n_vocab))])[0][0])
            q = np.exp(draft.score([ScoreRequest(prompt, [len(prompt) - 1], range(draft.n_vocab))])[0][0])
            spec = SpeculativeDecoder(target, draft, k=3, adaptive=False)
            counts = np.zeros(target.n_vocab)
            draws = 0
            for call in range(50):
                out = spec.generate(prompt, 50, max_tokens=1, sampling=params, seeds=range(call * 50, call * 50 + 50))
                for g in out.generations:
                    counts[g.tokens[0]] += 1
                    draws += 1
            assert spec.target.n_vocab == draft.n_vocab
        assert draws == 2500

        def pvalue(probs):
            order = np.argsort(-probs)
            exp = probs[order] * draws
            obs = counts[order]
            big = exp >= 5
            e = np.append(exp[big], exp[~big].sum())
            o = np.append(obs[big], obs[~big].sum())
            return chisquare(o, e * o.sum() / e.sum()).pvalue

        assert pvalue(p) > 1e-3
        assert pvalue(q) < 1e-6, "the test must be able to tell the draft's distribution apart"


class TestErrors:
    def test_missing_file(self, tmp_path):
        with pytest.raises(ModelNotFoundError, match="not found"):
            Engine(tmp_path / "nope.gguf")

    def test_not_gguf(self, tmp_path):
        bad = tmp_path / "bad.gguf"
        bad.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 10)
        with pytest.raises(NotGGUFError, match="not a GGUF file"):
            Engine(bad)

    @pytest.mark.parametrize("keep", [0.5, 0.999, 100])
    def test_truncated_gguf(self, tiny, tmp_path, keep):
        data = tiny["target"].read_bytes()
        cut = int(len(data) * keep) if keep < 1 else keep
        bad = tmp_path / "cut.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(CorruptModelError, match="truncated"):
            Engine(bad)

    def test_incompatible_vocab(self, tiny, target):
        with Engine(tiny["alien"]) as alien:
            with pytest.raises(IncompatibleVocabError, match="different vocabularies"):
                SpeculativeDecoder(target, alien)

    def test_prompt_longer_than_context(self, tiny):
        with Engine(tiny["target"], LoadOptions(n_ctx=256)) as small:
            long_prompt = small.tokenize("abc " * 200)
            with pytest.raises(ContextOverflowError, match="context"):
                small.generate(long_prompt, max_tokens=4)
            with pytest.raises(ContextOverflowError):
                small.score([ScoreRequest(long_prompt, [1], [1])])

    def test_engine_keeps_working_after_errors(self, tiny, tmp_path, target):
        before = target.generate(target.tokenize("hello"), 2, max_tokens=20, sampling=SAMPLED, seeds=[4, 5])
        for bad in [tmp_path / "missing.gguf"]:
            with pytest.raises(ModelNotFoundError):
                Engine(bad)
        with pytest.raises(ContextOverflowError):
            target.generate(target.tokenize("abc " * 1200), max_tokens=4)
        after = target.generate(target.tokenize("hello"), 2, max_tokens=20, sampling=SAMPLED, seeds=[4, 5])
        assert [g.tokens for g in after.generations] == [g.tokens for g in before.generations]


class TestChatTemplate:
    def test_renders_the_gguf_template(self, target):
        text = target.render_chat([{"role": "user", "content": "2+2?"}])
        assert text == "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
        toks = target.chat_tokens([{"role": "user", "content": "2+2?"}])
        assert toks[0] == target.vocab.tokenize("<|im_start|>", False, True)[0]


class TestLoadFailures:
    """A failure after the model loads frees what was loaded (the adapter counts live handles)."""

    def test_failure_after_the_context_frees_model_and_context(self, tiny, monkeypatch):
        from specsearch.core import llama_adapter as lla

        before = lla.live_handles()

        def broken_vocab(model):
            raise RuntimeError("vocabulary unreadable")

        monkeypatch.setattr(lla, "Vocab", broken_vocab)
        with pytest.raises(RuntimeError, match="vocabulary"):
            Engine(tiny["target"])
        assert lla.live_handles() == before

    def test_impossible_context_frees_the_model(self, tiny):
        from specsearch.core import llama_adapter as lla
        from specsearch.core.errors import ModelLoadError

        before = lla.live_handles()
        refused = LoadOptions()
        # More sequences than llama.cpp allows (256): set past LoadOptions' own checks, so
        # that llama.cpp itself refuses the context after the model has loaded.
        object.__setattr__(refused, "n_seq_max", 1000)
        with pytest.raises(ModelLoadError, match="context"):
            Engine(tiny["target"], refused)
        assert lla.live_handles() == before
        with Engine(tiny["target"]) as engine:
            assert lla.live_handles() == {k: v + 1 for k, v in before.items()}
            assert engine.live_sequences == 0
        assert lla.live_handles() == before


class TestSmallContext:
    def test_batch_never_exceeds_the_context(self, tiny):
        with Engine(tiny["target"], LoadOptions(n_ctx=256, n_batch=512)) as engine:
            assert engine.n_batch <= engine.n_ctx

    def test_scoring_more_than_the_cache_holds_runs_in_groups(self, tiny):
        """Requests whose tokens together outgrow the KV cache are scored a group at a time
        (before: llama.cpp aborted the process on a batch longer than n_ctx)."""
        requests = []
        with Engine(tiny["target"], LoadOptions(n_ctx=256, batch_invariant=True)) as engine:
            for i, text in enumerate(["apples " * 30, "pears " * 30, "plums " * 30]):
                tokens = engine.tokenize(f"{i} " + text)[:150]
                requests.append(ScoreRequest(tokens, [len(tokens) - 1], [1, 2]))
            together = engine.score(requests)
            assert engine.live_sequences == 0
            alone = [engine.score([r], reuse=False)[0] for r in requests]
        assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(together, alone))

    def test_generation_ends_with_what_it_has_when_the_cache_fills(self, tiny):
        with Engine(tiny["target"], LoadOptions(n_ctx=256)) as engine:
            prompt = engine.tokenize("count the apples " * 8)
            out = engine.generate([prompt], 4, max_tokens=200, sampling=SAMPLED, seeds=[1, 2, 3, 4])
            assert {g.finish_reason for g in out.generations} <= {"context", "eos", "stop"}
            assert "context" in {g.finish_reason for g in out.generations}
            assert engine.live_sequences == 0
            room = engine.generation_room([prompt], 4)
            assert 0 < room <= (256 - len(prompt)) // 4


class TestHostileChatTemplate:
    """A GGUF's template that loops ~forever or builds a gigantic string is stopped, and
    llama.cpp's built-in rendering of the kind it names is used, with a warning."""

    MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": "2+2?"}]

    @pytest.mark.parametrize("name,template", [
        ("loop", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}<|im_start|>"),
        ("string", "{{ 'x' * 1000000000 }}<|im_start|>"),
        ("doubling", "{% set ns = namespace(s='xx') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
                     "{% endfor %}{{ ns.s }}<|im_start|>"),
        ("filter", "{{ 'x' | center(1000000000) }}<|im_start|>"),
    ])
    def test_stopped_and_rendered_by_llama_cpp(self, tiny, tmp_path, monkeypatch, name, template):
        import time

        from tiny_models import write_tiny_model

        from specsearch.core import chat_template

        monkeypatch.setattr(chat_template, "RENDER_SECONDS", 0.3)
        with Engine(tiny["target"]) as good:
            expected = good.render_chat(self.MESSAGES)
        with Engine(write_tiny_model(tmp_path / f"{name}.gguf", 1, chat_template=template)) as hostile:
            t0 = time.perf_counter()
            with pytest.warns(chat_template.ChatTemplateWarning, match="built-in"):
                text = hostile.render_chat(self.MESSAGES)
            assert time.perf_counter() - t0 < 3
            assert text == expected  # llama.cpp's ChatML
            assert hostile.render_chat(self.MESSAGES) == expected  # remembered: no second wait

    def test_unknown_kind_falls_back_to_a_transcript(self, tiny, tmp_path):
        from tiny_models import write_tiny_model

        from specsearch.core import chat_template

        with Engine(write_tiny_model(tmp_path / "odd.gguf", 1, chat_template="{{ 'y' * 10000000000 }}")) as eng:
            with pytest.warns(chat_template.ChatTemplateWarning):
                text = eng.render_chat(self.MESSAGES)
        assert text == "System: S\n\nUser: 2+2?\n\nAssistant:"

"""The engine's KV-lease API on tiny generated models (real llama.cpp, no mocks)."""

from __future__ import annotations

import threading

import llama_cpp.llama_cpp as L
import numpy as np
import pytest

from specsearch.core.engine import Engine, Feed, LoadOptions
from specsearch.core.errors import SpecSearchError
from specsearch.core.sampling import GREEDY, SamplingParams

EXACT = LoadOptions(batch_invariant=True)
SAMPLED = SamplingParams(temperature=0.9, top_k=40, top_p=0.95, min_p=0.0)


@pytest.fixture
def engine(tiny):
    with Engine(tiny["target"], EXACT) as e:
        yield e


def fresh_logits(path, tokens, outputs):
    """Logits after ``tokens[i]`` for i in outputs, evaluated from an empty cache."""
    with Engine(path, EXACT) as fresh, fresh.lease(tokens, 0) as lease:
        assert len(lease) == 0
        return np.stack(fresh.evaluate([Feed(lease, tokens, outputs)])[0])


def fresh_generate(path, prompt, **kw):
    with Engine(path, EXACT) as fresh:
        return fresh.generate(prompt, **kw).generations


def assert_table_mirrors_llama_cache(engine):
    """White box: each slot's token count is what llama.cpp's cache holds for that sequence."""
    memory = L.llama_get_memory(engine._ctx)
    for slot in range(len(engine._slots)):
        assert L.llama_memory_seq_pos_max(memory, slot) + 1 == engine._slots.n_held(slot), f"slot {slot}"


def test_a_reused_prefix_gives_the_logits_of_a_fresh_evaluation(tiny, engine):
    base = engine.tokenize("the answer is 12 + 3 = 15 and")
    more = base + engine.tokenize(" the next step is")
    with engine.lease(base, 0) as first:
        engine.evaluate([Feed(first, base)])
    with engine.lease(more) as lease:
        assert lease.tokens == tuple(base)  # the whole cached prompt is reused
        new = more[len(base):]
        got = np.stack(engine.evaluate([Feed(lease, new, range(len(new)))])[0])
    expect = fresh_logits(tiny["target"], more, range(len(base), len(more)))
    np.testing.assert_allclose(got, expect, atol=1e-4)
    assert_table_mirrors_llama_cache(engine)


def test_several_leases_evaluate_in_one_batch_as_they_would_alone(tiny, engine):
    texts = ["a cat sat on the mat", "x + 2 = 5, so x", "the answer is"]
    prompts = [engine.tokenize(t) for t in texts]
    with engine.lease(prompts[0], 0) as a, engine.lease(prompts[1], 0) as b, engine.lease(prompts[2], 0) as c:
        calls = engine.decode_calls
        rows = engine.evaluate([Feed(a, prompts[0], [len(prompts[0]) - 1]), Feed(b, prompts[1], [0, 3]),
                                Feed(c, prompts[2], [len(prompts[2]) - 1])])
        assert engine.decode_calls == calls + 1
    for p, got, outs in zip(prompts, rows, [[len(prompts[0]) - 1], [0, 3], [len(prompts[2]) - 1]]):
        np.testing.assert_allclose(np.stack(got), fresh_logits(tiny["target"], p, outs), atol=1e-4)


def test_a_lease_released_by_an_exception_is_reusable_by_every_thread(tiny, engine):
    prompt = engine.tokenize("problem 7: the answer is")
    with pytest.raises(RuntimeError, match="cancelled"):
        with engine.lease(prompt) as lease:
            engine.evaluate([Feed(lease, prompt[:-1])])
            raise RuntimeError("cancelled")
    results = []
    worker = threading.Thread(target=lambda: results.append(
        engine.generate(prompt, 2, max_tokens=20, sampling=SAMPLED, seeds=[3, 4])))
    worker.start()
    worker.join(60)
    assert results, "the engine's lock was not released with the lease"
    out = results[0]
    assert out.stats.reused_tokens == len(prompt) - 1
    for seed, gen in zip([3, 4], out.generations):
        assert gen.tokens == fresh_generate(tiny["target"], prompt, max_tokens=20, sampling=SAMPLED,
                                            seeds=[seed])[0].tokens


def test_fork_and_truncate_then_generate_equals_a_fresh_run(tiny, engine):
    prompt = engine.tokenize("x + 2 = 5, so x")
    rejected = engine.tokenize(" is nine hundred")
    kept = engine.tokenize(" equals 3")
    with engine.lease(prompt, 0) as lease:
        engine.evaluate([Feed(lease, prompt + rejected)])
        forks = lease.fork(2)
        assert all(f.tokens == tuple(prompt + rejected) for f in forks)
        forks[0].truncate(len(prompt))  # a rejected draft
        engine.evaluate([Feed(forks[0], kept)])
        forks[1].truncate(len(prompt) - 3)
        assert forks[0].tokens == tuple(prompt + kept) and len(forks[1]) == len(prompt) - 3
        assert_table_mirrors_llama_cache(engine)
    cont = prompt + kept
    out = engine.generate(cont, 1, max_tokens=24, sampling=GREEDY)
    assert out.stats.reused_tokens == len(cont) - 1
    assert out.generations[0].tokens == fresh_generate(tiny["target"], cont, max_tokens=24, sampling=GREEDY)[0].tokens
    again = engine.generate(prompt + rejected, 1, max_tokens=24, sampling=GREEDY)
    assert again.stats.reused_tokens == len(prompt + rejected) - 1  # the parent kept its tokens
    assert again.generations[0].tokens == fresh_generate(tiny["target"], prompt + rejected, max_tokens=24,
                                                         sampling=GREEDY)[0].tokens
    assert_table_mirrors_llama_cache(engine)


def test_every_lease_of_a_call_is_released_when_it_fails(engine):
    prompts = [engine.tokenize("abc"), engine.tokenize("abd")]

    def boom():
        raise RuntimeError("stop polling failed")

    with pytest.raises(RuntimeError):
        engine.generate(prompts, 3, max_tokens=10, sampling=SAMPLED, seeds=range(6), should_stop=boom)
    assert not any(engine._slots.is_leased(s) for s in range(len(engine._slots)))
    engine.reset_cache()  # refuses while any lease is open


def test_an_open_lease_keeps_other_threads_waiting(engine):
    prompt = engine.tokenize("hello there")
    done = threading.Event()
    worker = threading.Thread(target=lambda: (engine.generate(prompt, max_tokens=2), done.set()))
    with engine.lease(prompt):
        worker.start()
        assert not done.wait(0.5), "another thread decoded while a lease was open"
    worker.join(60)
    assert done.is_set()


def test_a_lease_belongs_to_its_engine(tiny, engine):
    with Engine(tiny["draft"], EXACT) as other, other.lease([1, 2, 3]) as foreign:
        with pytest.raises(ValueError, match="another engine"):
            engine.evaluate([Feed(foreign, [1])])
    with engine.lease([1, 2, 3]) as lease:
        with pytest.raises(SpecSearchError, match="while sequences are leased"):
            engine.reset_cache()

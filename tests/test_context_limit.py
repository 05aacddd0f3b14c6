"""Searches that reach the context limit answer instead of failing (tiny models, n_ctx 256)."""

from __future__ import annotations

import pytest

from specsearch.core.api import ModelSpec, Solver
from specsearch.core.config import SearchConfig
from specsearch.core.engine import Engine, LoadOptions
from specsearch.core.prm import JudgePRM
from specsearch.core.prm_window import fit_path
from specsearch.core.tree import SearchResult

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
N_CTX = 256


def tight(path, n_ctx: int = N_CTX) -> ModelSpec:
    return ModelSpec(str(path), n_ctx=n_ctx, n_threads=1)  # tiny models: threads only add sync costs


def long_config(method: str, temperature: float = 0.9, **kw) -> SearchConfig:
    # Depth and step budget far beyond what 256 tokens hold (the prompt alone is ~140).
    base = dict(method=method, max_depth=30, max_step_tokens=64, children=2, beam_width=2, seed=3,
                temperature=temperature)
    return SearchConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def solver(tiny):
    # prm = the small model's file: the judge shares its engine and its 256-token context
    with Solver(small=tight(tiny["draft"]), large=tight(tiny["target"]), prm=tight(tiny["draft"]),
                prm_kind="judge", arith_check=False) as s:
        yield s


@pytest.mark.parametrize("temperature", [0.9, 0.0])  # greedy: the speculative decoder drafts
@pytest.mark.parametrize("method", ["ar", "sps", "small", "specsearch"])
def test_every_method_answers_at_the_context_limit(solver, method, temperature):
    result = solver.solve(QUESTION, long_config(method, temperature))
    assert result.best_leaf_id is not None and result.solution
    best = result.node(result.best_leaf_id)
    assert best.finished
    assert any(n.finish_reason == "context" for n in result.nodes)
    assert all(n.finish_reason is not None for n in result.nodes if n.finished)
    # the tree keeps growing until the context is full, not just one step
    assert max(n.depth for n in result.nodes) >= 2
    assert all(e.live_sequences == 0 for e in solver._engines.values())


def test_the_step_budget_is_clipped_to_the_room_left(solver):
    """A first step of 64 tokens for 2 children cannot fit beside a ~140-token prompt in
    256 cells: its thoughts get what is left instead of failing the search."""
    result = solver.solve(QUESTION, long_config("small", max_step_tokens=192, children=4, beam_width=1))
    prompt = len(solver._engines["small"].chat_tokens([
        {"role": "system", "content": long_config("small").system_prompt}, {"role": "user", "content": QUESTION}]))
    first = [n for n in result.nodes if n.depth == 1]
    assert len(first) == 4
    assert all(n.n_tokens <= (N_CTX - prompt) // 4 for n in first)
    assert result.best_leaf_id is not None


def test_prm_trimmed_exactly_when_the_path_does_not_fit(tiny):
    # Roomy writers, a judge with 256 tokens: late steps' paths outgrow the judge only.
    with Solver(small=tight(tiny["draft"], 2048), prm=tight(tiny["target"]), prm_kind="judge",
                arith_check=False) as s:
        result = s.solve(QUESTION, long_config("small", max_depth=8, max_step_tokens=40, beam_width=1, seed=0))
        judge = s.reward_model()
        assert isinstance(judge, JudgePRM)
        flags = []
        for node in result.nodes:
            path = [n.text for n in result.path(node.parent_id)] + [node.text]
            assert node.prm_trimmed == (not judge.fits(QUESTION, path)), node.id
            flags.append(node.prm_trimmed)
        assert any(flags) and not all(flags)
        assert result.best_leaf_id is not None


def test_records_keep_the_marks(solver):
    result = solver.solve(QUESTION, long_config("ar"))
    again = SearchResult.from_dict(result.to_dict())
    assert [(n.finish_reason, n.prm_trimmed) for n in again.nodes] == [
        (n.finish_reason, n.prm_trimmed) for n in result.nodes]
    old = result.to_dict()
    for n in old["nodes"]:  # a record saved before the marks existed
        del n["finish_reason"], n["prm_trimmed"]
    assert {n.finish_reason for n in SearchResult.from_dict(old).nodes} == {None}


class TestWindow:
    def test_oldest_steps_go_first(self, tiny):
        with Engine(tiny["target"], LoadOptions(n_ctx=N_CTX)) as eng:
            judge = JudgePRM(eng)
            steps = [f"step {i}: " + "the apples are counted again " * 3 for i in range(12)]
            window = fit_path(judge, QUESTION, steps)
            assert window.trimmed and 1 <= len(window.steps) < len(steps)
            assert window.steps == steps[-len(window.steps):]
            assert judge.fits(QUESTION, window.steps)
            assert not judge.fits(QUESTION, steps[-len(window.steps) - 1:])
            short = fit_path(judge, QUESTION, steps[:1])
            assert short.steps == steps[:1] and not short.trimmed
            judge.score_last(QUESTION, [window.steps])  # scoring the window does not overflow

    def test_a_step_too_long_alone_keeps_its_end(self, tiny):
        with Engine(tiny["target"], LoadOptions(n_ctx=N_CTX)) as eng:
            judge = JudgePRM(eng)
            step = "counting " * 200 + "so the answer is 7"
            window = fit_path(judge, QUESTION, ["first", step])
            assert window.trimmed and len(window.steps) == 1
            assert step.endswith(window.steps[0]) and window.steps[0].endswith("the answer is 7")
            assert judge.fits(QUESTION, window.steps) and not judge.fits(QUESTION, [step[-len(window.steps[0]) - 1:]])

"""A served large model and PRM against a real server: llama_cpp.server on 127.0.0.1
serving the tiny GGUF that the local path loads (tests/served.py).

llama_cpp.server takes text prompts only, so what it conditions on is the text of
the search's tokens, tokenized again.  The exact properties that hold:

* per request: the served greedy completion of a prompt is the local engine's
  greedy completion of the same tokens (same text, same finish reason);
* per search: from the rendered question (the tokenizer's own tokens) the first
  step's tree is the local one's; deeper, each large-model thought is the local
  engine's greedy thought after the path's text tokenized again (the local search
  conditions on the thoughts' own tokens, which a model need not write as its
  tokenizer would, so its deeper steps can differ: the tiny model writes " $" as
  one token where the tokenizer splits it).  A server taking token ids gets the
  search's own tokens (tests/test_remote_faults.py), and so the local tree.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python's server extra")

from served import ServedGGUF  # noqa: E402
from tiny_models import write_tiny_model  # noqa: E402

from specsearch.core import events as ev  # noqa: E402
from specsearch.core.api import ModelSpec, Solver  # noqa: E402
from specsearch.core.config import SearchConfig  # noqa: E402
from specsearch.core.engine import Engine, LoadOptions  # noqa: E402
from specsearch.core.remote_client import RemoteConnectionError, ServedModel  # noqa: E402
from specsearch.core.remote_model import RemoteModel  # noqa: E402
from specsearch.core.sampling import GREEDY  # noqa: E402

QUESTION = "What is 2+3?"
GREEDY_SEARCH = dict(temperature=0.0, max_depth=3, beam_width=2, children=2, max_step_tokens=24)


@pytest.fixture(scope="module")
def printable(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A target/draft pair that writes printable text (a text server drops invalid UTF-8)."""
    d = tmp_path_factory.mktemp("printable")
    return {"target": write_tiny_model(d / "target.gguf", 1, printable=True),
            "draft": write_tiny_model(d / "draft.gguf", 2, printable=True)}


@pytest.fixture(scope="module")
def server(printable: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    srv = ServedGGUF(printable["target"], log=tmp_path_factory.mktemp("log") / "server.log")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def local(printable: dict[str, Path]):
    engine = Engine(printable["target"], LoadOptions(n_ctx=2048, n_threads=1, batch_invariant=True))
    yield engine
    engine.close()


def _local(path: Path) -> ModelSpec:
    return ModelSpec(str(path), n_threads=1)


def test_served_completion_is_the_local_greedy_completion(server, local, printable) -> None:
    remote = RemoteModel(ServedModel(server.url, tokenizer=str(printable["target"])))
    assert remote.prompt_mode is None
    first = local.chat_tokens([{"role": "user", "content": QUESTION}])
    step = local.generate(first, 1, max_tokens=12, sampling=GREEDY).generations[0]
    prompts = [first, first + local.tokenize(step.text, add_special=False),
               local.chat_tokens([{"role": "user", "content": "Add 7 and 5."}])]
    reasons = set()
    free = local.generate(prompts, 1, max_tokens=30, sampling=GREEDY).generations
    for stop, max_tokens in (((), 30), ((free[2].text[4:6],), 30), ((free[0].text[6:8], "zz"), 40)):
        want = local.generate(prompts, 1, max_tokens=max_tokens, sampling=GREEDY, stop=stop).generations
        got = remote.generate(prompts, 1, max_tokens=max_tokens, sampling=GREEDY, stop=stop).generations
        assert [g.text for g in got] == [w.text for w in want]
        assert [g.finish_reason for g in got] == [_told(remote, w, stop) for w in want]
        reasons |= {w.finish_reason for w in want}
    assert remote.prompt_mode == "text"  # llama_cpp.server refuses token-id prompts
    assert reasons == {"stop", "length", "eos"}  # each way a served completion ends, told apart
    remote.close()


def _told(remote: RemoteModel, local_generation, stops) -> str:
    """The finish reason a text-only server's answer is read as (RemoteModel.ended_by_stop):
    the local one, but stop for an end token the token count cannot tell from the stop."""
    if local_generation.finish_reason != "eos" or not stops:
        return local_generation.finish_reason
    counted = len(local_generation.tokens) - 1  # the server does not count the end token
    return "stop" if remote.ended_by_stop(local_generation.text, stops[0], counted) else "eos"


def _tree(result) -> list[tuple]:
    """Each node as the search made it (not n_tokens: the served path counts the thought's
    text tokenized again)."""
    return [(n.id, n.parent_id, n.depth, n.text, n.source, n.fate, n.selected, n.finish_reason)
            for n in result.nodes]


def test_first_step_with_served_large_model_gives_the_local_tree(server, printable) -> None:
    """From the rendered question (the tokenizer's own tokens) the trees are the same."""
    config = SearchConfig(method="ar", **{**GREEDY_SEARCH, "max_depth": 1})
    small, target = _local(printable["draft"]), _local(printable["target"])
    with Solver(small=small, large=target, prm=small, prm_kind="judge", batch_invariant=True) as solver:
        want = solver.solve(QUESTION, config)
    with Solver(small=small, large=server.url, prm=small, prm_kind="judge", batch_invariant=True) as solver:
        got = solver.solve(QUESTION, config)
    assert _tree(got) == _tree(want) and len(got.nodes) == config.children
    assert got.answer == want.answer and got.solution == want.solution
    assert [n.score for n in got.nodes] == pytest.approx([n.score for n in want.nodes], abs=1e-6)


@pytest.mark.parametrize("method", ["ar", "specsearch"])
def test_every_served_thought_is_the_local_continuation_of_the_servers_text(server, printable, local,
                                                                            method) -> None:
    """Deeper, the server reads the path as text and tokenizes it itself: each of the
    search's requests is answered with the local engine's greedy completion of that text's
    tokens, and the large model's thoughts are those answers."""
    # specsearch with β = 1: every draft is rejected and rewritten by the served model.
    config = SearchConfig(method=method, **GREEDY_SEARCH, **(
        {"threshold_mode": "fixed", "fixed_beta": 1.0} if method == "specsearch" else {}))
    small = _local(printable["draft"])
    events: list[ev.SearchEvent] = []
    with Solver(small=small, large=server.url, prm=small, prm_kind="judge") as solver:
        remote = solver.engine("large")
        assert isinstance(remote, RemoteModel)
        sent: list[tuple[dict, dict]] = []
        complete = remote.client.complete

        def record(payload: dict, retry: bool = True):
            reply = complete(payload, retry)
            sent.append((payload, reply.data))
            return reply

        remote.client.complete = record
        got = solver.solve(QUESTION, config, on_event=events.append)
    answers = []
    for payload, data in sent:
        want = local.generate(local.tokenize(payload["prompt"]), 1, max_tokens=payload["max_tokens"],
                              sampling=GREEDY, stop=payload["stop"]).generations[0]
        answers.append(data["choices"][0]["text"])
        assert answers[-1] == want.text
    large_nodes = [n for n in got.nodes if n.source == "large"]
    assert {n.depth for n in large_nodes} == {1, 2, 3}
    assert sorted(n.text for n in large_nodes) == sorted(a.strip() for a in answers)
    assert got.stats.tokens["large"] > 0 and got.stats.remote["large"]["requests"] == len(sent)
    notices = [e.message for e in events if isinstance(e, ev.Notice)]
    assert isinstance(events[0], ev.SearchStarted)
    if method == "specsearch":  # a small model is there that could draft tokens: said once, after SearchStarted
        assert isinstance(events[1], ev.Notice) and len(notices) == 1
        assert "token-level drafting is off" in notices[0] and server.url in notices[0]
        assert got.stats.tokens_drafted == 0 and got.stats.thoughts_regenerated > 0


def test_served_judge_prm_scores_as_the_local_one(server, printable, local) -> None:
    """All of the tiny vocabulary's log-probs asked for: the scores are the local judge's."""
    served = ServedModel(server.url, tokenizer=str(printable["target"]), top_logprobs=local.n_vocab)
    steps = [["2 + 3 = 5"], ["2 + 3 = 6"], ["First add.", "The answer is 5."]]
    with Solver(prm=served, prm_kind="judge", arith_check=False) as remote, \
            Solver(prm=_local(printable["target"]), prm_kind="judge", arith_check=False,
                   batch_invariant=True) as here:
        got = [remote.judge_step(QUESTION, s) for s in steps]
        want = [here.judge_step(QUESTION, s) for s in steps]
        assert remote.prm_description()["kind"] == "judge"
    assert got == pytest.approx(want, abs=1e-5)
    assert len(set(round(w, 4) for w in want)) == 3  # the scores tell the steps apart


def test_server_killed_mid_search_keeps_the_tree(printable, tmp_path) -> None:
    srv = ServedGGUF(printable["target"], log=tmp_path / "server.log")
    config = SearchConfig(method="ar", **GREEDY_SEARCH)
    small = _local(printable["draft"])
    killed = []

    def kill_after_first_step(event: ev.SearchEvent) -> None:
        if isinstance(event, ev.BeamsSelected) and not killed:
            srv.stop()
            killed.append(event.step)

    served = ServedModel(srv.url, retries=1, timeout=5)
    try:
        with Solver(small=small, large=served, prm=small, prm_kind="judge") as solver:
            result = solver.solve(QUESTION, config, on_event=kill_after_first_step)
            assert killed == [1]
            assert result.cancelled and result.error is not None
            assert result.error.startswith(f"cannot reach the large model at {srv.url}: connection refused")
            assert "\n" not in result.error
            assert [n.depth for n in result.nodes] == [1, 1]  # step 1 kept, selected; step 2 never written
            assert all(n.selected for n in result.nodes)
            # The Solver still works: a local method runs, the served one fails the same clear way.
            assert solver.solve(QUESTION, dataclasses.replace(config, method="small")).error is None
            again = solver.solve(QUESTION, config)
            assert again.nodes == [] and again.error.startswith("cannot reach the large model")
        with pytest.raises(RemoteConnectionError, match="connection refused"):
            Solver(large=dataclasses.replace(served, tokenizer=str(printable["target"]))).engine("large")
    finally:
        srv.stop()

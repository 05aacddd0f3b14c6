"""Faults a real server cannot be made to produce on demand, from a stand-in
completions server (http.server on 127.0.0.1 in a thread): malformed JSON, slow
answers, 500s then success, nothing listening; and the request shape a
token-id server (llama-server, vLLM) is sent."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest

from served import free_port
from specsearch.core.api import ModelSpec, Solver
from specsearch.core.config import SearchConfig
from specsearch.core.errors import SpecSearchError
from specsearch.core.remote_client import (
    CompletionsClient,
    RemoteConnectionError,
    RemoteError,
    RemoteHTTPError,
    RemoteResponseError,
    RemoteTimeoutError,
    ServedModel,
)
from specsearch.core.remote_model import RemoteModel
from specsearch.core.sampling import GREEDY


def completion(text: str = "ok", finish: str = "length", choice: dict | None = None, **extra) -> dict:
    """A completions answer; ``choice`` adds to its choice (e.g. vLLM's stop_reason), ``extra`` to the top."""
    return {"choices": [{"text": text, "index": 0, "finish_reason": finish, "logprobs": None, **(choice or {})}],
            **extra}


class StandIn:
    """Answers each POST with ``answer(body) -> (status, body bytes, delay seconds)``;
    records each request's JSON and headers."""

    def __init__(self, answer: Callable[[dict], tuple[int, bytes, float]]) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append(body)
                stand_in.headers.append(dict(self.headers))
                status, data, delay = answer(body)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    servers: list[StandIn] = []

    def start(answer) -> StandIn:
        servers.append(StandIn(answer))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def ok(data: dict, delay: float = 0.0) -> tuple[int, bytes, float]:
    return 200, json.dumps(data).encode(), delay


def test_malformed_json_is_a_clear_error(stand_in) -> None:
    srv = stand_in(lambda body: (200, b"{not json", 0.0))
    with pytest.raises(RemoteResponseError) as e:
        CompletionsClient(ServedModel(srv.url), "large").complete({"prompt": "x"})
    assert str(e.value) == f"the large model at {srv.url} sent a response that is not JSON: '{{not json'"
    assert len(srv.requests) == 1  # a bad answer is not retried


def test_a_completion_without_choices_is_a_clear_error(stand_in, tiny) -> None:
    srv = stand_in(lambda body: ok({"object": "text_completion"}))
    with pytest.raises(RemoteResponseError, match=r"sent a completion without choices\[0\]\.text"):
        RemoteModel(ServedModel(srv.url, tokenizer=str(tiny["target"]))).probe()


def test_slow_answer_times_out_after_its_retries(stand_in) -> None:
    srv = stand_in(lambda body: ok(completion(), delay=1.0))
    t0 = time.perf_counter()
    with pytest.raises(RemoteTimeoutError) as e:
        CompletionsClient(ServedModel(srv.url, timeout=0.2, retries=1), "large").complete({"prompt": "x"})
    assert str(e.value) == f"the large model at {srv.url} did not answer within 0.2 s (2 tries)"
    assert len(srv.requests) == 2
    assert time.perf_counter() - t0 < 1.5  # each try gives up at the timeout, not when the server answers


def test_500s_then_success_is_retried(stand_in) -> None:
    statuses = [500, 503]

    def answer(body):
        if statuses:
            return statuses.pop(0), b'{"error": "busy"}', 0.0
        return ok(completion("fine"))

    srv = stand_in(answer)
    reply = CompletionsClient(ServedModel(srv.url, retries=2), "large").complete({"prompt": "x"})
    assert reply.data["choices"][0]["text"] == "fine"
    assert len(srv.requests) == 3


def test_client_errors_are_not_retried_and_say_the_servers_message(stand_in) -> None:
    srv = stand_in(lambda body: (404, b'{"error": {"message": "model nope not found"}}', 0.0))
    with pytest.raises(RemoteHTTPError) as e:
        CompletionsClient(ServedModel(srv.url, retries=3), "prm").complete({"prompt": "x"})
    assert e.value.status == 404 and len(srv.requests) == 1
    assert str(e.value) == f'the prm model at {srv.url} answered HTTP 404: {{"error": {{"message": "model nope not found"}}}}'


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RemoteConnectionError) as e:
        CompletionsClient(ServedModel(url, retries=1), "large").complete({"prompt": "x"})
    assert str(e.value) == f"cannot reach the large model at {url}: connection refused (2 tries)"


def test_api_key_is_sent_from_the_environment_and_never_shown(stand_in, monkeypatch) -> None:
    monkeypatch.setenv("MY_KEY", "sekret-123")
    srv = stand_in(lambda body: (401, b'{"error": "bad key"}', 0.0))
    served = ServedModel(srv.url, api_key_env="MY_KEY")
    with pytest.raises(RemoteHTTPError) as e:
        CompletionsClient(served, "large").complete({"prompt": "x"})
    assert srv.headers[0]["Authorization"] == "Bearer sekret-123"
    assert "sekret" not in str(e.value) and "sekret" not in repr(served) and "sekret" not in json.dumps(served.to_dict())


def test_bad_served_model_settings_are_refused() -> None:
    with pytest.raises(RemoteError, match="must start with http:// or https://"):
        ServedModel("127.0.0.1:8080")
    with pytest.raises(RemoteError, match="timeout must be > 0"):
        ServedModel("http://x", timeout=0)


def test_a_token_id_server_is_sent_the_searchs_token_ids(stand_in, tiny) -> None:
    """A server taking token-id prompts gets the prompt ids as they are, a seed and stop per
    child, children as parallel requests; its timings split remote time."""
    srv = stand_in(lambda body: ok(completion(" 5", "stop", choice={"stop_reason": "\n\n"},
                                              timings={"prompt_ms": 2.0, "predicted_ms": 3.0})))
    model = RemoteModel(ServedModel(srv.url, tokenizer=str(tiny["target"])))
    prompt = model.chat_tokens([{"role": "user", "content": "What is 2+3?"}])
    out = model.generate(prompt, 3, max_tokens=7, sampling=GREEDY, seeds=[11, 12, 13], stop=["\n\n"])
    assert model.prompt_mode == "tokens"
    sent = srv.requests[1:]  # after the probe
    assert [r["prompt"] for r in sent] == [prompt] * 3
    assert sorted(r["seed"] for r in sent) == [11, 12, 13]
    assert {(r["max_tokens"], tuple(r["stop"]), r["temperature"], r["repeat_penalty"]) for r in sent} == \
        {(7, ("\n\n",), 0.0, 1.0)}
    assert [g.text for g in out.generations] == [" 5"] * 3
    assert [g.finish_reason for g in out.generations] == ["stop"] * 3
    assert out.generations[0].tokens == model.tokenize(" 5\n\n", add_special=False)
    assert out.stats.remote_requests == 3 and out.stats.server_timed_requests == 3
    assert out.stats.server_seconds == pytest.approx(3 * 0.005)


def test_search_stats_split_remote_time_where_the_server_reports_timings(stand_in, tiny) -> None:
    srv = stand_in(lambda body: ok(completion("The answer is 5.", "stop", choice={"stop_reason": None},
                                              timings={"prompt_ms": 1.0, "predicted_ms": 4.0}), delay=0.02))
    with Solver(large=ServedModel(srv.url, tokenizer=str(tiny["target"])), prm_kind="arith") as solver:
        result = solver.solve("What is 2+3?", SearchConfig(method="ar", beam_width=1, children=2, max_depth=2))
    remote = result.stats.to_dict()["remote"]["large"]
    assert remote["requests"] == 2 and remote["timed_requests"] == 2
    assert remote["server_seconds"] == pytest.approx(0.010)
    assert remote["seconds"] >= 0.04
    assert remote["network_queue_seconds"] == pytest.approx(remote["seconds"] - 0.010)
    assert [n.finish_reason for n in result.nodes] == ["eos", "eos"]  # stop_reason None: the end token
    assert result.answer == "5"


def test_a_prm_server_without_logprobs_fails_at_start(stand_in, tiny) -> None:
    srv = stand_in(lambda body: ok(completion("yes")))
    solver = Solver(small=ModelSpec(str(tiny["draft"])), prm=srv.url, prm_kind="judge")
    with pytest.raises(RemoteError, match="cannot serve as a reward model: it must return top log-probs"):
        solver.reward_model()
    assert all(r["max_tokens"] == 1 for r in srv.requests)  # probes only, no search ran
    solver.close()


def test_a_served_prm_of_a_kind_that_needs_a_local_model_is_refused(stand_in, tiny) -> None:
    srv = stand_in(lambda body: ok(completion("yes")))
    with Solver(small=ModelSpec(str(tiny["draft"])), prm=srv.url, prm_kind="head") as solver:
        with pytest.raises(SpecSearchError, match="PRM kind .head. needs a local model"):
            solver.reward_model()


def test_tokenizer_defaults_to_the_small_models_file(stand_in, tiny) -> None:
    srv = stand_in(lambda body: ok(completion()))
    with Solver(small=ModelSpec(str(tiny["draft"])), large=srv.url) as solver:
        large = solver.engine("large")
        assert isinstance(large, RemoteModel) and Path(large.tokenizer_path) == tiny["draft"]


def test_solve_with_a_served_large_model_from_the_command_line(stand_in, tiny, capsys) -> None:
    from specsearch.cli.main import EXIT_ERROR, main

    srv = stand_in(lambda body: ok(completion("The answer is 5.", "stop", choice={"stop_reason": None})))
    code = main(["solve", "What is 2+3?", "--small", str(tiny["draft"]), "--large", srv.url, "--prm-kind", "arith",
                 "--method", "specsearch", "--served-model", "big", "--remote-timeout", "7", "--beam", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"note: token-level drafting is off: the large model is served at {srv.url}" in out
    assert {r["model"] for r in srv.requests} == {"big"}

    dead = f"http://127.0.0.1:{free_port()}"
    code = main(["solve", "What is 2+3?", "--small", str(tiny["draft"]), "--large", dead, "--method", "ar",
                 "--prm-kind", "arith", "--remote-timeout", "1"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert err.strip().splitlines() == [f"specsearch: error: cannot reach the large model at {dead}: connection refused"]


def test_drafting_off_is_said_once_per_solver(stand_in, tiny) -> None:
    from specsearch.core import events as ev

    srv = stand_in(lambda body: ok(completion("The answer is 5.", "stop", choice={"stop_reason": None})))
    config = SearchConfig(method="specsearch", beam_width=1, children=1, max_depth=2)
    with Solver(small=ModelSpec(str(tiny["draft"])), large=srv.url, prm_kind="arith") as solver:
        said = []
        for _ in range(2):
            events: list = []
            solver.solve("What is 2+3?", config, on_event=events.append)
            said.append([e.message for e in events if isinstance(e, ev.Notice)])
    assert len(said[0]) == 1 and said[1] == []

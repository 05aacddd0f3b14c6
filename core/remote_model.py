"""A served model (core.remote_client) as a TokenGenerator the search can use as
its large model, and as the model under a judge or step-tag reward model.

Tokens stay local.  Only the vocabulary of a GGUF with the served model's
tokenizer is loaded (``ServedModel.tokenizer``; no weights, milliseconds): the
chat template is rendered and prompts are tokenized here exactly as for a
local Engine (core.model_text), so the search holds the same token lists.  A
server that accepts token-id prompts (llama-server, vLLM) is sent those ids;
one that takes only text (llama_cpp.server) is sent their text, special tokens
written out, which it tokenizes back (the same ids whenever the ids are the
tokenizer's own for that text: always for rendered prompts, and for thoughts
the model wrote as the tokenizer would have).  Which one a server takes is
found once, by ``probe``.

Each thought is one completion request (stop at the delimiter, its own seed);
the thoughts of a step go as parallel requests, so the server batches them.
Token-level speculation is the server's business: the Solver never pairs a
remote model with the local speculative decoder.

Scoring (``score``, the primitive the judge and step-tag PRMs use) asks for
one token with the server's top log-probs at each scoring position and reads
the candidates' values there; a candidate outside the returned top ``k``
gets the smallest value returned (an upper bound of its own); ask for more with
``ServedModel.top_logprobs`` where the server allows it.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from . import llama_adapter as lla
from .engine import MAX_DEFAULT_CTX, ScoreRequest
from .errors import ContextOverflowError
from .generation import GenerateOutput, GenerateRequest, GenerateStats, Generation, TokenGenerator
from .gguf_info import read_gguf_info
from .model_text import ModelText
from .remote_client import CompletionsClient, RemoteError, RemoteHTTPError, RemoteResponseError, ServedModel


class RemoteModel(ModelText, TokenGenerator):
    """A served model with a local tokenizer; a TokenGenerator (see ``run``)."""

    def __init__(self, served: ServedModel, role: str = "large") -> None:
        if not served.tokenizer:
            raise RemoteError(
                f"the {role} model at {served.base_url} needs a GGUF with its tokenizer "
                f"(--{role}-tokenizer FILE.gguf; by default the small model's file is used)"
            )
        self.served = served
        self.role = role
        self.path = served.base_url
        self.tokenizer_path = served.tokenizer
        self.info = read_gguf_info(served.tokenizer)  # clear error before llama.cpp sees the file
        self._model = lla.load_model(served.tokenizer, 0, vocab_only=True)
        self.facts = lla.model_facts(self._model)
        self.vocab = lla.Vocab(self._model)
        self.n_vocab = self.vocab.n_tokens
        self.n_ctx = served.n_ctx or min(self.info.context_length or 4096, MAX_DEFAULT_CTX)
        self.n_gpu_layers = 0  # none here: the server decides
        self.client = CompletionsClient(served, role)
        self.prompt_mode: str | None = None  # "tokens" | "text", set by probe()
        self._logprobs_checked = False
        self._probe_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.served.model or self.served.base_url

    # ------------------------------------------------------------ probe ---
    def probe(self) -> None:
        """Check the server answers, and whether it takes token-id prompts (else text).
        Once; a server that cannot be used raises RemoteError here, before any search."""
        with self._probe_lock:
            if self.prompt_mode is not None:
                return
            tokens = self.chat_tokens([{"role": "user", "content": "Hi"}])
            try:
                # No retries: a server that takes only text refuses ids with 400, 422 or even 500.
                self._parse_choice(self.client.complete(_greedy_payload(tokens, 1), retry=False).data)
                self.prompt_mode = "tokens"
            except (RemoteHTTPError, RemoteResponseError):
                self._parse_choice(self.client.complete(_greedy_payload(self.prompt_text(tokens), 1)).data)
                self.prompt_mode = "text"

    def probe_logprobs(self) -> None:
        """Check the server returns top log-probs (a remote reward model reads them)."""
        self.probe()
        if self._logprobs_checked:
            return
        tokens = self.chat_tokens([{"role": "user", "content": "Is 1 + 1 = 2? Answer yes or no."}])
        try:
            top = self._top_logprobs(tokens)
        except RemoteError as e:
            raise RemoteError(f"{self.client.where()} cannot serve as a reward model: it must return "
                              f"top log-probs of completions ({e})") from None
        if not top:
            raise RemoteError(f"{self.client.where()} returned no log-probs; a remote reward model needs "
                              f"`logprobs` in completions (llama_cpp.server: logits_all, the default)")
        self._logprobs_checked = True

    # ---------------------------------------------------------- prompts ---
    def prompt_text(self, tokens: Sequence[int]) -> str:
        """``tokens`` as text a server tokenizes back into them: special tokens written
        out, and without the BOS the server adds itself."""
        if tokens and self.facts.add_bos and tokens[0] == self.facts.bos:
            tokens = tokens[1:]
        data = b"".join(self.vocab.piece(t) or self.vocab.text(t).encode("utf-8") for t in tokens)
        return data.decode("utf-8", errors="replace")

    def wire_prompt(self, tokens: Sequence[int]) -> list[int] | str:
        self.probe()
        return list(tokens) if self.prompt_mode == "tokens" else self.prompt_text(tokens)

    def generation_room(self, prompts: Sequence[Sequence[int]], n: int = 1) -> int:
        """Tokens each continuation may add: the server's KV cache is its own business."""
        return self.n_ctx - 1 - max((len(p) for p in prompts), default=0)

    def check_fits(self, n_tokens: int, what: str = "prompt") -> None:
        if n_tokens >= self.n_ctx:
            raise ContextOverflowError(f"{what} has {n_tokens} tokens but {self.client.where()} is "
                                       f"set to hold {self.n_ctx}")

    # --------------------------------------------------------- generate ---
    def run(self, request: GenerateRequest) -> GenerateOutput:
        """One completion request per sequence, in parallel (see the module doc)."""
        self.probe()
        stats = GenerateStats()
        lock = threading.Lock()

        def one(k: int) -> Generation:
            prompt = request.prompts[k // request.n]
            if request.should_stop is not None and request.should_stop():
                return Generation("", [], [], "cancelled", k // request.n)
            self.check_fits(len(prompt) + 1)
            payload = {
                "prompt": self.wire_prompt(prompt),
                "max_tokens": max(1, min(request.max_tokens, self.n_ctx - 1 - len(prompt))),
                **_sampling_fields(request),
                "seed": request.seeds[k],
                "stop": list(request.stop),
            }
            reply = self.client.complete(payload)
            with lock:
                stats.remote_requests += 1
                stats.remote_seconds += reply.seconds
                if reply.server_ms:
                    stats.server_timed_requests += 1
                    stats.server_seconds += sum(reply.server_ms.values()) / 1000.0
            return self._generation(reply.data, request, k // request.n)

        total = len(request.prompts) * request.n
        t0 = time.perf_counter()
        gens = _in_parallel(one, range(total), self.served.parallel)
        stats.wall_seconds = time.perf_counter() - t0
        stats.prompt_tokens = sum(len(request.prompts[k // request.n]) for k in range(total))
        stats.generated_tokens = sum(len(g.tokens) for g in gens)
        return GenerateOutput(gens, stats)

    def _generation(self, data: dict[str, Any], request: GenerateRequest, prompt_index: int) -> Generation:
        choice = self._parse_choice(data)
        text = choice["text"]
        stop = choice.get("stop_reason") if isinstance(choice.get("stop_reason"), str) else (
            request.stop[0] if request.stop else "")
        finish = self._finish_reason(choice, data, text, stop)
        if finish == "stop":
            tokens = self.tokenize(text + stop, add_special=False)
        else:
            tokens = self.tokenize(text, add_special=False)
            if finish == "eos":
                tokens.append(self.facts.eos)
        return Generation(text, tokens, [], finish, prompt_index)

    def _finish_reason(self, choice: dict[str, Any], data: dict[str, Any], text: str, stop: str) -> str:
        """eos | stop | length.  OpenAI's "stop" covers both the end-of-generation token and a
        stop string: vLLM's ``stop_reason`` tells them apart (a string, or None for the token).
        Otherwise the server's token count does (see ``ended_by_stop``)."""
        reason = choice.get("finish_reason")
        if reason == "length":
            return "length"
        if reason not in ("stop", "eos"):
            raise RemoteResponseError(f"{self.client.where()} sent an unknown finish_reason {reason!r}")
        if reason == "eos":
            return "eos"
        if "stop_reason" in choice:
            return "stop" if isinstance(choice["stop_reason"], str) else "eos"
        if not stop:
            return "eos"  # no stop string was asked for
        usage = data.get("usage") or {}
        counted = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if isinstance(counted, int):
            return "stop" if self.ended_by_stop(text, stop, counted) else "eos"
        return "stop"

    def ended_by_stop(self, text: str, stop: str, counted: int) -> bool:
        """Whether ``counted`` generated tokens (the server's count: the tokens that wrote the
        stop string are counted, the end token is not) that left ``text`` ended at ``stop``:
        more tokens than ``text`` has, or as many as ``text + stop`` has (the stop's first
        token merged with the text's end, as Qwen's ":\n\n").  Exact when the model wrote
        its tokenizer's own tokens; when even then the counts cannot tell (an end token
        after a text whose last token would merge with the stop) it says stop: a beam that
        goes on costs one step, one that ends too early loses its solution."""
        return counted > len(self.tokenize(text, add_special=False)) or \
            counted >= len(self.tokenize(text + stop, add_special=False))

    def _parse_choice(self, data: dict[str, Any]) -> dict[str, Any]:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict) \
                or not isinstance(choices[0].get("text"), str):
            raise RemoteResponseError(f"{self.client.where()} sent a completion without choices[0].text")
        return choices[0]

    # ------------------------------------------------------------ score ---
    def score(self, requests: Sequence[ScoreRequest], reuse: bool = True) -> list[np.ndarray]:
        """Engine.score over the server: for each request an array [positions, candidates] of
        log-probs of each candidate as the next token (see the module doc for candidates
        outside the top log-probs)."""
        self.probe_logprobs()
        jobs = [(i, j) for i, r in enumerate(requests) for j in range(len(r.positions))]
        for r in requests:
            self.check_fits(len(r.tokens), "scoring input")

        def one(job: tuple[int, int]) -> np.ndarray:
            r = requests[job[0]]
            top = self._top_logprobs(r.tokens[: r.positions[job[1]] + 1])
            return self._candidate_logprobs(top, r.candidates)

        rows = _in_parallel(one, jobs, self.served.parallel)
        out: list[list[np.ndarray]] = [[] for _ in requests]
        for (i, _), row in zip(jobs, rows):
            out[i].append(row)
        return [np.stack(r) for r in out]

    def _top_logprobs(self, tokens: Sequence[int]) -> dict[Any, float]:
        """The server's top log-probs of the next token after ``tokens``, keyed by token
        text (OpenAI's completions format) or by id (formats that give ids)."""
        payload = {**_greedy_payload(self.wire_prompt(tokens), 1), "logprobs": self.served.top_logprobs}
        choice = self._parse_choice(self.client.complete(payload).data)
        logprobs = choice.get("logprobs")
        if not isinstance(logprobs, dict):
            raise RemoteResponseError(f"{self.client.where()} sent no logprobs in its completion")
        top = logprobs.get("top_logprobs")
        if isinstance(top, list) and top and isinstance(top[0], dict):
            return {k: float(v) for k, v in top[0].items()}
        content = logprobs.get("content")  # llama-server's newer format: ids and tokens
        if isinstance(content, list) and content and isinstance(content[0], dict):
            entries = content[0].get("top_logprobs") or []
            return {e.get("id", e.get("token")): float(e["logprob"]) for e in entries if isinstance(e, dict)}
        raise RemoteResponseError(f"{self.client.where()} sent logprobs without top_logprobs")

    def _candidate_logprobs(self, top: dict[Any, float], candidates: Sequence[int]) -> np.ndarray:
        floor = min(top.values()) if top else -math.inf
        row = []
        for c in candidates:
            text = self.vocab.piece(c).decode("utf-8", errors="ignore")
            row.append(top.get(c, top.get(text, floor)))
        return np.asarray(row, dtype=np.float64)

    def close(self) -> None:
        if getattr(self, "_model", None):
            lla.free_model(self._model)
            self._model = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _greedy_payload(prompt: Any, max_tokens: int) -> dict[str, Any]:
    return {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "top_k": 1, "seed": 0,
            "repeat_penalty": 1.0}


def _sampling_fields(request: GenerateRequest) -> dict[str, Any]:
    """The request's sampling, with every penalty off (servers default some on: llama_cpp's
    repeat_penalty is 1.1), so the server samples as the local engine would."""
    s = request.sampling
    return {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p, "min_p": s.min_p,
            "repeat_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}


def _in_parallel(fn: Callable[[Any], Any], items: Sequence[Any] | range, workers: int) -> list[Any]:
    """``[fn(x) for x in items]`` on up to ``workers`` threads; the first error is raised
    (requests not yet started are dropped)."""
    items = list(items)
    if len(items) <= 1:
        return [fn(x) for x in items]
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)))
    try:
        futures = [pool.submit(fn, x) for x in items]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

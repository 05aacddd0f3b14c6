"""A loaded GGUF model with a multi-sequence KV cache.

What Speculative Search needs from a model, done in as few ``llama_decode``
calls as possible:

* ``generate``: prefill prompts once, fork each into n sequences (KV shared,
  not recomputed) and decode all live sequences together, one decode per
  step, each with its own seeded sampler chain; stop per sequence on a stop
  string, an end-of-generation token or the token budget.
* ``score``: log-probs of candidate tokens at given positions of many token
  sequences that share a prefix (reward models); ``hidden_states``: the final
  hidden states there (learned PRM heads).
* prefix reuse across calls: any new sequence starts from the cached
  sequence sharing its longest prefix; least recently used idle sequences
  are evicted when the cache is full.

KV sequences are used through one public API, which generate, score,
hidden_states and the speculative decoder (core/speculative.py) all share:
``lease`` / ``lease_prompts`` hand out ``KVLease``s (core/kv_slots.py: fork,
truncate, release on exit), and ``evaluate`` feeds tokens to any number of
leases in as few decodes as possible.

``Engine.offload`` (core/offload.py) says where the model's layers went
(backend, layers on the GPU of all) once it is loaded.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np

from . import llama_adapter as lla
from .errors import ContextOverflowError, KVCacheFullError, SpecSearchError
from .generation import (
    GenerateOutput,
    GenerateRequest,
    GenerateStats,
    Generation,
    StopChecker,
    TokenGenerator,
)
from .gguf_info import GGUFInfo, read_gguf_info
from .model_text import ModelText
from .offload import Offload, model_offload
from .kv_slots import KVLease, KVSlots, common_prefix_len, distinct_prefix_cells
from .options import Bounds, check_bounds
from .sampling import log_softmax_at, logsumexp_rows

# Default context: the model's trained context, capped so the KV cache of one
# model stays within this budget (and at most 8192 tokens).
KV_BUDGET_BYTES = 1 << 30
MAX_DEFAULT_CTX = 8192


@dataclass(frozen=True)
class LoadOptions:
    """How a model loads; every number is checked when made (LOAD_BOUNDS), so none reaches llama.cpp wrapped."""

    n_ctx: int | None = None
    """Context (KV cache) size in tokens, shared by all sequences; None: automatic."""
    n_gpu_layers: int | None = None
    """Layers to offload; None: all when llama.cpp has a GPU backend, else 0."""
    n_threads: int | None = None
    """CPU threads; None: all cores."""
    n_seq_max: int = 64
    """Sequences the KV cache can hold at once (beams x children + prompts)."""
    n_batch: int = 512
    """Most tokens per llama_decode call."""
    batch_invariant: bool = False
    """f32 KV cache and no flash attention: twice the KV memory, but logits no
    longer depend on how a sequence was split into batches (tests that compare
    token for token use it; the default is the faster f16 cache)."""

    def __post_init__(self) -> None:
        check_bounds(self, LOAD_BOUNDS)


_INT32_MAX = 2**31 - 1  # llama.cpp's parameters are 32-bit: a larger (or negative) n_ctx would wrap
LOAD_BOUNDS = {
    "n_ctx": Bounds(1, _INT32_MAX, kind=int, optional=True),
    "n_gpu_layers": Bounds(-1, _INT32_MAX, kind=int, optional=True),  # -1: all, as in llama.cpp
    "n_threads": Bounds(1, 512, kind=int, optional=True),  # ggml's GGML_MAX_N_THREADS
    "n_seq_max": Bounds(1, _INT32_MAX, kind=int),
    "n_batch": Bounds(1, _INT32_MAX, kind=int),
}
"""The values each LoadOptions field takes (None: automatic)."""


@dataclass(frozen=True)
class ScoreRequest:
    """Log-probs of ``candidates`` as the next token after ``tokens[i]``, for i in ``positions``."""

    tokens: Sequence[int]
    positions: Sequence[int]
    candidates: Sequence[int]


@dataclass(frozen=True)
class HiddenRequest:
    """Final hidden states after ``tokens[i]`` for i in ``positions`` (strictly increasing),
    and optionally the log-probability of each token in ``tokens[logprob_from:]``
    given the tokens before it (``logprob_from`` >= 1)."""

    tokens: Sequence[int]
    positions: Sequence[int]
    logprob_from: int | None = None


@dataclass
class HiddenResult:
    hidden: np.ndarray  # [len(positions), n_embd] float32
    token_logprobs: np.ndarray | None  # [len(tokens) - logprob_from] or None


class Feed(NamedTuple):
    """Tokens to decode into a lease's sequence, after what it holds."""

    lease: KVLease
    tokens: Sequence[int]
    outputs: Sequence[int] = ()
    """Offsets into ``tokens`` whose next-token logits are wanted."""


class Engine(ModelText, TokenGenerator):
    """One GGUF model, one llama.cpp context.

    Threads: every public method holds the engine's (reentrant) lock for its
    whole call, so calls from several threads run one after another, never
    interleaved, and llama.cpp is never entered twice at once.  A KVLease
    holds the same lock from ``lease`` until it is released: while one
    thread holds a lease, the engine is that thread's alone and other
    threads' calls wait.  Not safe: using a lease on another thread than the
    one that took it, and holding a lease while waiting for another thread
    that uses the same engine (a deadlock).
    """

    def __init__(self, path: str | os.PathLike[str], options: LoadOptions | None = None) -> None:
        self.path = str(Path(path))
        self.options = options or LoadOptions()
        self.info: GGUFInfo = read_gguf_info(self.path)  # clear error before llama.cpp sees the file
        n_gpu = self.options.n_gpu_layers
        if n_gpu is None:
            n_gpu = 999 if lla.supports_gpu_offload() else 0
        self.n_gpu_layers = n_gpu
        self._lock = threading.RLock()
        self._ctx = None
        self._batch: lla.Batch | None = None
        self._model = lla.load_model(self.path, n_gpu, tensor_types=self.info.tensor_types)
        reported = lla.reported_offload()  # read before the context's own log lines replace it
        try:
            self._finish_loading()
        except BaseException:
            self.close()  # whatever was loaded before the failure is freed, not leaked
            raise
        self.offload: Offload = model_offload(self.options.n_gpu_layers, n_gpu, self.facts.n_layer, reported)
        """Where the layers went (backend, layers on the GPU of all): for the CLI and the app."""
        self.decode_calls = 0
        self.decoded_tokens = 0  # tokens fed to llama_decode (cache hits are not counted)
        self.decode_seconds = 0.0

    def _finish_loading(self) -> None:
        """Everything after the model is loaded: its facts, the context, the KV table, the batch."""
        self.facts = lla.model_facts(self._model)
        self.n_threads = self.options.n_threads or max(1, os.cpu_count() or 1)
        self.n_batch = self.options.n_batch
        n_ctx = self.options.n_ctx or self._default_ctx()
        self._ctx = lla.new_context(
            self._model,
            n_ctx=n_ctx,
            n_batch=self.n_batch,
            n_seq_max=self.options.n_seq_max,
            n_threads=self.n_threads,
            batch_invariant=self.options.batch_invariant,
        )
        self.n_ctx = lla.context_size(self._ctx)
        self.n_batch = lla.batch_size(self._ctx)  # llama.cpp caps it at n_ctx: a longer batch would abort
        self.vocab = lla.Vocab(self._model)
        self.n_vocab = self.vocab.n_tokens
        self._slots = KVSlots(self.options.n_seq_max, lla.SequenceMemory(self._ctx), self._lock)
        self._batch = lla.Batch(self.n_batch)

    def _default_ctx(self) -> int:
        trained = self.info.context_length or 4096
        per_token = self.info.kv_bytes_per_token()
        budget = KV_BUDGET_BYTES // per_token if per_token else MAX_DEFAULT_CTX
        n = min(trained, MAX_DEFAULT_CTX, budget)
        return max(256, n // 256 * 256)

    # ----------------------------------------------------------- text ---
    @property
    def name(self) -> str:
        return self.info.name

    def check_fits(self, n_tokens: int, what: str = "prompt") -> None:
        if n_tokens >= self.n_ctx:
            raise ContextOverflowError(
                f"{what} has {n_tokens} tokens but the context of {Path(self.path).name} holds "
                f"{self.n_ctx}; shorten it or load the model with a larger n_ctx"
            )

    def generation_room(self, prompts: Sequence[Sequence[int]], n: int = 1) -> int:
        """Most tokens each of ``n`` continuations of every prompt can add with all of
        them in the KV cache at once: each within ``n_ctx`` positions, all within its
        ``n_ctx`` cells (prompts sharing a prefix share its cells).  May be <= 0."""
        if not prompts:
            return self.n_ctx - 1
        per_sequence = self.n_ctx - 1 - max(len(p) for p in prompts)
        shared = (self.n_ctx - distinct_prefix_cells(prompts)) // (len(prompts) * max(1, n))
        return min(per_sequence, shared)

    # ------------------------------------------------------ KV leases ---
    @property
    def live_sequences(self) -> int:
        """KV sequences leased now: 0 whenever no call is running (else a lease leaked)."""
        return self._slots.n_leased

    def lease(self, tokens: Sequence[int], reuse_limit: int | None = None) -> KVLease:
        """A KV sequence to continue ``tokens`` in, already holding their longest
        cached prefix of at most ``reuse_limit`` tokens (default ``len(tokens) - 1``:
        one token is left to evaluate, for its logits; 0: start empty).  Feed it
        the rest with ``evaluate``.  Use it in a ``with`` block: until it is
        released this thread holds the engine's lock."""
        limit = len(tokens) - 1 if reuse_limit is None else reuse_limit
        return self._slots.lease(tokens, limit)

    @contextmanager
    def lease_prompts(self, prompts: Sequence[Sequence[int]], stats: GenerateStats) -> Iterator[list[KVLease]]:
        """One lease per prompt holding ``prompt[:-1]`` (the prompts' shared
        prefix computed once), released when the block ends."""
        for p in prompts:
            if not p:
                raise SpecSearchError("empty prompt: nothing to condition on")
            self.check_fits(len(p) + 1)
        with self._lock, ExitStack() as held:
            computed = self._cache_shared_prefix(prompts, min((len(p) for p in prompts), default=1) - 1)
            leases = [held.enter_context(self.lease(p)) for p in prompts]
            # The shared prefix was read just now, not served from an earlier call's cache.
            stats.reused_tokens -= computed
            feeds = []
            for lease, p in zip(leases, prompts):
                stats.prompt_tokens += len(p)
                stats.reused_tokens += len(lease)
                feeds.append(Feed(lease, p[len(lease) : -1]))
            self.evaluate(feeds)
            yield leases

    def _cache_shared_prefix(self, token_lists: Sequence[Sequence[int]], limit: int) -> int:
        """Evaluate the prefix (at most ``limit`` tokens) all the lists share, once:
        their own leases then share its cells instead of each computing it.  Returns
        how many of its tokens were evaluated (the rest were cached already)."""
        if len(token_lists) < 2:
            return 0
        common = list(token_lists[0][:limit])
        for tokens in token_lists[1:]:
            common = common[: common_prefix_len(common, tokens)]
        if len(common) <= 1:
            return 0
        with self.lease(common, len(common)) as shared:
            todo = common[len(shared) :]
            self.evaluate([Feed(shared, todo)])
        return len(todo)

    def evaluate(
        self,
        feeds: Sequence[Feed],
        row_fn: Callable[[np.ndarray, int, int], object] | None = None,
    ) -> list[list]:
        """Decode each feed's tokens into its lease; return, per feed, copies of
        the logits at its ``outputs`` offsets, or ``row_fn(logits_row_view,
        feed_index, offset)`` of them (no copy of the row).

        Feeds are packed into as few decodes of at most n_batch tokens as possible.
        """
        with self._lock:
            results: list[list] = [[] for _ in feeds]
            pending: list[tuple[int, int]] = []  # (feed, offset) of each output of the current batch
            fed: dict[int, list[int]] = {}  # slot -> tokens in the current batch
            batch = self._batch
            batch.clear()

            def flush() -> None:
                if batch.n == 0:
                    return
                self._decode(batch)
                for slot, tokens in fed.items():
                    self._slots.record(slot, tokens)
                if pending:
                    rows = lla.output_logits(self._ctx, batch.n_outputs, self.n_vocab)
                    for row, (j, k) in enumerate(pending):
                        results[j].append(np.array(rows[row]) if row_fn is None else row_fn(rows[row], j, k))
                pending.clear()
                fed.clear()
                batch.clear()

            for j, (lease, tokens, outputs) in enumerate(feeds):
                if not lease.belongs_to(self._slots):
                    raise ValueError("a KV lease of another engine")
                slot, want = lease.slot, set(outputs)
                base = len(lease)
                self.check_fits(base + len(tokens))
                for k, tok in enumerate(tokens):
                    if batch.free == 0:
                        flush()
                        base = len(lease) - k
                    out = k in want
                    batch.add(tok, base + k, slot, out)
                    fed.setdefault(slot, []).append(tok)
                    if out:
                        pending.append((j, k))
            flush()
            return results

    def reset_cache(self) -> None:
        """Forget every cached sequence (no lease may be open)."""
        self._slots.clear()

    # --------------------------------------------------------- decode ---
    def _decode(self, batch: lla.Batch) -> None:
        t0 = time.perf_counter()
        while True:
            rc = lla.decode(self._ctx, batch)
            if rc == 0:
                break
            if rc == 1:  # no KV room; llama.cpp left the cache untouched
                if not self._slots.evict_idle():
                    raise KVCacheFullError(
                        f"the KV cache ({self.n_ctx} tokens) is full; load with a larger n_ctx "
                        "or use fewer beams / children"
                    )
                continue
            raise SpecSearchError(f"llama_decode failed with status {rc}: {lla.recent_log()}")
        self.decode_calls += 1
        self.decoded_tokens += batch.n
        self.decode_seconds += time.perf_counter() - t0

    def _decode_step(self, steps: Sequence[tuple[KVLease, int]]) -> list[int]:
        """One token into each lease, in one decode, all with outputs; their batch indices."""
        batch = self._batch
        batch.clear()
        index = [batch.add(tok, len(lease), lease.slot, True) for lease, tok in steps]
        self._decode(batch)
        for lease, tok in steps:
            self._slots.record(lease.slot, (tok,))
        return index

    # ------------------------------------------------------- generate ---
    def run(self, request: GenerateRequest) -> GenerateOutput:
        """``generate`` (see TokenGenerator.generate) with its arguments packed."""
        with self._lock:
            stats = GenerateStats()
            t0 = time.perf_counter()
            calls0 = self.decode_calls
            with self.lease_prompts(request.prompts, stats) as prompt_leases:
                gens = self._sample(request, prompt_leases)
            stats.wall_seconds = time.perf_counter() - t0
            stats.decode_calls = self.decode_calls - calls0
            stats.generated_tokens = sum(len(g.tokens) for g in gens)
            return GenerateOutput(gens, stats)

    def _sample(self, request: GenerateRequest, prompt_leases: list[KVLease]) -> list[Generation]:
        # The prompts' last tokens go in one decode so all first samples come from it.
        first_index = self._decode_step([(lease, p[-1]) for lease, p in zip(prompt_leases, request.prompts)])
        leases: list[KVLease] = []
        seq_index: list[int] = []
        for lease, index in zip(prompt_leases, first_index):
            leases += lease.fork(request.n)
            seq_index += [index] * request.n
        sampling = request.sampling
        chains = [
            lla.SamplerChain(sampling.temperature, sampling.top_k, sampling.top_p, sampling.min_p, s)
            for s in request.seeds
        ]
        checkers = [StopChecker(request.stop) for _ in leases]
        tokens: list[list[int]] = [[] for _ in leases]
        logprobs: list[list[float]] = [[] for _ in leases]
        finish: list[str | None] = [None] * len(leases)
        live = list(range(len(leases)))
        n_out = len(prompt_leases)
        try:
            while live:
                rows = lla.output_logits(self._ctx, n_out, self.n_vocab)
                sampled = [chains[k].sample(self._ctx, seq_index[k]) for k in live]
                if request.logprobs:
                    idx = np.array([seq_index[k] for k in live])
                    lse = logsumexp_rows(rows[idx])[:, 0]
                    for k, tok, z, i in zip(live, sampled, lse, idx):
                        logprobs[k].append(float(rows[i, tok]) - float(z))
                for k, tok in zip(live, sampled):
                    tokens[k].append(tok)
                    if self.is_eog(tok):
                        finish[k] = "eos"
                    elif checkers[k].push(self.vocab.piece(tok)):
                        finish[k] = "stop"
                    elif len(tokens[k]) >= request.max_tokens:
                        finish[k] = "length"
                    elif len(leases[k]) + 1 >= self.n_ctx:
                        finish[k] = "context"
                live = [k for k in live if finish[k] is None]
                if live and request.should_stop is not None and request.should_stop():
                    for k in live:
                        finish[k] = "cancelled"
                    live = []
                if not live:
                    break
                try:
                    index = self._decode_step([(leases[k], tokens[k][-1]) for k in live])
                except KVCacheFullError:
                    # No room for one more token of every sequence: they end with what they have.
                    for k in live:
                        finish[k] = "context"
                    break
                for k, i in zip(live, index):
                    seq_index[k] = i
                n_out = len(live)
        finally:
            for c in chains:
                c.close()
        prompt_of = request.prompt_of
        return [
            Generation(checkers[k].finish(), tokens[k], logprobs[k], finish[k] or "length", prompt_of[k])
            for k in range(len(leases))
        ]

    # ---------------------------------------------------------- score ---
    def score(self, requests: Sequence[ScoreRequest], reuse: bool = True) -> list[np.ndarray]:
        """For each request an array [len(positions), len(candidates)] of
        log-softmax values: log P(candidate | tokens[: position + 1])."""
        if not requests:
            return []
        for r in requests:
            if not r.positions:
                raise ValueError("a score request needs at least one position")
            if min(r.positions) < 0 or max(r.positions) >= len(r.tokens):
                raise ValueError("score positions must index the request's tokens")
            self.check_fits(len(r.tokens), "scoring input")
        return self._in_fitting_groups(requests, lambda group: self._score(group, reuse))

    def _score(self, requests: Sequence[ScoreRequest], reuse: bool) -> list[np.ndarray]:
        limits = [min(r.positions) if reuse else 0 for r in requests]
        with self._lock, ExitStack() as held:
            if reuse:
                self._cache_shared_prefix([r.tokens for r in requests], min(limits))
            else:
                self.reset_cache()
            leases = [held.enter_context(self.lease(r.tokens, limit)) for r, limit in zip(requests, limits)]
            rows = self.evaluate([
                Feed(lease, r.tokens[len(lease) :], [p - len(lease) for p in r.positions])
                for lease, r in zip(leases, requests)
            ])
        return [log_softmax_at(np.stack(job_rows), list(r.candidates)) for r, job_rows in zip(requests, rows)]

    # ------------------------------------------------- hidden states ---
    def hidden_states(self, requests: Sequence[HiddenRequest], reuse: bool = True) -> list[HiddenResult]:
        """Final hidden states at given positions (learned PRM heads read them).

        Tokens before each wanted position are evaluated with embeddings off
        (llama.cpp would otherwise output every token of a long prefill); the
        wanted tokens of all requests go in one decode with embeddings on.
        """
        for r in requests:
            if not r.positions:
                raise ValueError("a hidden-state request needs at least one position")
            if list(r.positions) != sorted(set(r.positions)) or r.positions[0] < 0 or r.positions[-1] >= len(r.tokens):
                raise ValueError("hidden-state positions must be increasing indices into the request's tokens")
            if r.logprob_from is not None and not 1 <= r.logprob_from <= r.positions[0]:
                raise ValueError("logprob_from must lie in [1, first position]")
            self.check_fits(len(r.tokens), "scoring input")
        return self._in_fitting_groups(requests, lambda group: self._hidden_group(group, reuse))

    def _hidden_group(self, requests: Sequence[HiddenRequest], reuse: bool) -> list[HiddenResult]:
        # A cached prefix may cover at most the tokens before the first wanted
        # position (and before the first token whose log-prob is wanted).
        limits = [min(r.positions[0], r.logprob_from - 1 if r.logprob_from else r.positions[0]) if reuse else 0
                  for r in requests]
        with self._lock, ExitStack() as held:
            if not reuse:
                self.reset_cache()
            leases = [held.enter_context(self.lease(r.tokens, limit)) for r, limit in zip(requests, limits)]
            return self._hidden_states(requests, leases)  # it switches embeddings off again itself

    def _in_fitting_groups(self, requests: Sequence, run: Callable[[Sequence], list]) -> list:
        """``run(requests)``; when their tokens do not fit the KV cache together, each
        half in turn (results in request order; each request alone fits, checked)."""
        try:
            return run(requests)
        except KVCacheFullError:
            if len(requests) < 2:
                raise
        half = len(requests) // 2
        return self._in_fitting_groups(requests[:half], run) + self._in_fitting_groups(requests[half:], run)

    def _hidden_states(self, requests: Sequence[HiddenRequest], leases: list[KVLease]) -> list[HiddenResult]:
        hidden: list[list[np.ndarray]] = [[] for _ in requests]
        logps: list[list[float]] = [[] for _ in requests]
        n_embd = self.facts.n_embd
        for round_ in range(max(len(r.positions) for r in requests)):
            active = [i for i, r in enumerate(requests) if round_ < len(r.positions)]
            # 1. Embeddings off: each request's tokens up to its next wanted position.
            #    Outputs only where a token's log-prob is wanted: the logits at
            #    absolute index t predict token t + 1.
            feeds = []
            starts = [len(leases[i]) for i in active]
            for i, start in zip(active, starts):
                r = requests[i]
                new = list(r.tokens[start : r.positions[round_]])
                first_logprob = r.logprob_from if r.logprob_from is not None else len(r.tokens) + 1
                feeds.append(Feed(leases[i], new, [k for k in range(len(new)) if start + k + 1 >= first_logprob]))

            def next_logprob(row: np.ndarray, j: int, k: int) -> float:
                return _logprob_of(row, requests[active[j]].tokens[starts[j] + k + 1])

            for i, lps in zip(active, self.evaluate(feeds, row_fn=next_logprob)):
                logps[i] += lps
            # 2. Embeddings on: the wanted tokens of all requests in one decode.
            lla.set_embeddings(self._ctx, True)
            try:
                index = self._decode_step([(leases[i], requests[i].tokens[requests[i].positions[round_]])
                                           for i in active])
            finally:
                lla.set_embeddings(self._ctx, False)
            # With embeddings on every token of the batch is an output, in batch order.
            logits = lla.output_logits(self._ctx, len(active), self.n_vocab)
            for i, b in zip(active, index):
                r = requests[i]
                pos = r.positions[round_]
                hidden[i].append(lla.output_hidden(self._ctx, b, n_embd))
                if r.logprob_from is not None and pos + 1 < len(r.tokens):
                    logps[i].append(_logprob_of(logits[b], r.tokens[pos + 1]))
        # 3. Log-probs wanted after the last position: embeddings off again.
        tail_of = [i for i, r in enumerate(requests)
                   if r.logprob_from is not None and len(leases[i]) < len(r.tokens) - 1]
        if tail_of:
            tail_starts = [len(leases[i]) for i in tail_of]
            tail_feeds = []
            for i, start in zip(tail_of, tail_starts):
                new = list(requests[i].tokens[start : len(requests[i].tokens) - 1])
                tail_feeds.append(Feed(leases[i], new, range(len(new))))
            rows = self.evaluate(
                tail_feeds,
                row_fn=lambda row, j, k: _logprob_of(row, requests[tail_of[j]].tokens[tail_starts[j] + k + 1]),
            )
            for i, lps in zip(tail_of, rows):
                logps[i] += lps
        out = []
        for i, r in enumerate(requests):
            lp = None
            if r.logprob_from is not None:
                lp = np.asarray(logps[i], dtype=np.float64)
                assert len(lp) == len(r.tokens) - r.logprob_from
            out.append(HiddenResult(np.stack(hidden[i]).astype(np.float32), lp))
        return out

    # -------------------------------------------------------- cleanup ---
    def close(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before anything was loaded
            return
        with lock:
            if getattr(self, "_batch", None) is not None:
                self._batch.close()
            if getattr(self, "_ctx", None):
                lla.free_context(self._ctx)
                self._ctx = None
            if getattr(self, "_model", None):
                lla.free_model(self._model)
                self._model = None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _logprob_of(row: np.ndarray, token: int) -> float:
    """log-softmax(row)[token] (row is a view of llama.cpp's logits)."""
    return float(log_softmax_at(row, [token])[0])

"""A loaded GGUF model with a multi-sequence KV cache.

What Speculative Search needs from a model, done in as few ``llama_decode``
calls as possible:

* ``generate``: prefill prompts once, fork each into n sequences (KV shared,
  not recomputed) and decode all live sequences together, one decode per
  step, each with its own seeded sampler chain; stop per sequence on a stop
  string, an end-of-generation token or the token budget.
* ``score``: log-probs of candidate tokens at given positions of many token
  sequences that share a prefix (reward models).
* prefix reuse across calls: any new sequence starts from the cached slot
  sharing its longest prefix; least recently used idle slots are evicted when
  the cache is full.

Speculative decoding (core/speculative.py) drives two engines through the
same slot primitives.
"""

from __future__ import annotations

import codecs
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import llama_adapter as lla
from .chat_template import render_chat
from .errors import ContextOverflowError, KVCacheFullError, SpecSearchError
from .gguf_info import GGUFInfo, read_gguf_info
from .kv_slots import KVSlots, common_prefix_len
from .sampling import GREEDY, SamplingParams, log_softmax_at, logsumexp_rows

# Default context: the model's trained context, capped so the KV cache of one
# model stays within this budget (and at most 8192 tokens).
KV_BUDGET_BYTES = 1 << 30
MAX_DEFAULT_CTX = 8192


@dataclass(frozen=True)
class LoadOptions:
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


@dataclass
class Generation:
    text: str
    tokens: list[int]
    logprobs: list[float]
    finish_reason: str  # stop | eos | length | context | cancelled
    prompt_index: int = 0


@dataclass
class GenerateStats:
    wall_seconds: float = 0.0
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens served from the KV cache
    generated_tokens: int = 0
    decode_calls: int = 0
    drafted: int = 0
    accepted: int = 0
    target_passes: int = 0
    draft_seconds: float = 0.0
    target_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None

    def to_dict(self, speculative: bool = False) -> dict:
        out = {
            "wall_seconds": self.wall_seconds,
            "tokens_per_second": self.tokens_per_second,
            "prompt_tokens": self.prompt_tokens,
            "reused_tokens": self.reused_tokens,
            "generated_tokens": self.generated_tokens,
            "decode_calls": self.decode_calls,
        }
        if speculative:
            out.update(
                drafted=self.drafted,
                accepted=self.accepted,
                acceptance_rate=self.acceptance_rate,
                target_passes=self.target_passes,
            )
        return out


@dataclass
class GenerateOutput:
    generations: list[Generation]
    stats: GenerateStats = field(default_factory=GenerateStats)

    @property
    def texts(self) -> list[str]:
        return [g.text for g in self.generations]


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


class StopChecker:
    """Incremental detokenisation and stop-string search for one sequence."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""

    def push(self, piece: bytes) -> bool:
        """Add a token's bytes; True (and text cut before the stop) when a stop string appeared."""
        start = len(self.text)
        self.text += self._decoder.decode(piece)
        for stop in self.stops:
            idx = self.text.find(stop, max(0, start - len(stop) + 1))
            if idx >= 0:
                self.text = self.text[:idx]
                return True
        return False

    def finish(self) -> str:
        self.text += self._decoder.decode(b"", final=True)
        return self.text


class Engine:
    """One GGUF model, one llama.cpp context; not thread-safe across calls
    from several threads at once (a lock serialises them)."""

    def __init__(self, path: str | os.PathLike[str], options: LoadOptions | None = None) -> None:
        self.path = str(Path(path))
        self.options = options or LoadOptions()
        self.info: GGUFInfo = read_gguf_info(self.path)  # clear error before llama.cpp sees the file
        n_gpu = self.options.n_gpu_layers
        if n_gpu is None:
            n_gpu = 999 if lla.supports_gpu_offload() else 0
        self.n_gpu_layers = n_gpu
        self._model = lla.load_model(self.path, n_gpu, tensor_types=self.info.tensor_types)
        self.facts = lla.model_facts(self._model)
        self.n_threads = self.options.n_threads or max(1, os.cpu_count() or 1)
        self.n_batch = self.options.n_batch
        n_ctx = self.options.n_ctx or self._default_ctx()
        try:
            self._ctx = lla.new_context(
                self._model,
                n_ctx=n_ctx,
                n_batch=self.n_batch,
                n_seq_max=self.options.n_seq_max,
                n_threads=self.n_threads,
                batch_invariant=self.options.batch_invariant,
            )
        except BaseException:
            lla.free_model(self._model)
            raise
        self.n_ctx = lla.context_size(self._ctx)
        self.vocab = lla.Vocab(self._model)
        self.n_vocab = self.vocab.n_tokens
        self.slots = KVSlots(self.options.n_seq_max)
        self._batch = lla.Batch(self.n_batch)
        self._lock = threading.RLock()
        self.decode_calls = 0
        self.decoded_tokens = 0  # tokens fed to llama_decode (cache hits are not counted)
        self.decode_seconds = 0.0

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

    def tokenize(self, text: str, add_special: bool | None = None, parse_special: bool = True) -> list[int]:
        """Tokens of ``text``; ``add_special`` None: add BOS when the model asks for it."""
        if add_special is None:
            add_special = self.facts.add_bos
        return self.vocab.tokenize(text, add_special, parse_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.vocab.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Format ``messages`` with the GGUF's own chat template."""
        return render_chat(
            self.facts.chat_template,
            messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.vocab.text(self.facts.bos) if self.facts.bos >= 0 else "",
            eos_token=self.vocab.text(self.facts.eos) if self.facts.eos >= 0 else "",
            model_name=self.path,
        )

    def chat_tokens(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        return self.chat_text_tokens(self.render_chat(messages, add_generation_prompt))

    def chat_text_tokens(self, text: str) -> list[int]:
        """Tokens of a rendered chat: special tokens parsed, one BOS when the model
        asks for it (a template that writes the BOS itself would otherwise give two)."""
        tokens = self.tokenize(text, add_special=self.facts.add_bos)
        if len(tokens) >= 2 and tokens[0] == tokens[1] == self.facts.bos:
            del tokens[0]
        return tokens

    def is_eog(self, token: int) -> bool:
        return token in self.vocab.eog

    def check_fits(self, n_tokens: int, what: str = "prompt") -> None:
        if n_tokens >= self.n_ctx:
            raise ContextOverflowError(
                f"{what} has {n_tokens} tokens but the context of {Path(self.path).name} holds "
                f"{self.n_ctx}; shorten it or load the model with a larger n_ctx"
            )

    # ------------------------------------------------------- KV slots ---
    def reset_cache(self) -> None:
        with self._lock:
            lla.memory_clear(self._ctx)
            for s in range(len(self.slots)):
                self.slots.tokens[s] = []

    def _evict(self, slot: int) -> None:
        lla.seq_remove(self._ctx, slot, 0, -1)
        self.slots.tokens[slot] = []

    def _take_slot(self, exclude: set[int] = frozenset()) -> int | None:
        slot = self.slots.free_slot()
        if slot is None:
            slot = self.slots.eviction_candidate(exclude)
            if slot is not None:
                self._evict(slot)
        return slot

    def _acquire(self, tokens: Sequence[int], reuse_limit: int) -> int:
        """A busy slot holding the longest cached prefix of ``tokens[:reuse_limit]``."""
        want = list(tokens[:reuse_limit])
        best, lcp = self.slots.best_prefix(want) if want else (None, 0)
        idle_best = best is not None and best not in self.slots.busy
        if idle_best and lcp == len(self.slots.tokens[best]):
            slot = best  # the cached sequence is a prefix of the request: extend in place
        else:
            slot = self._take_slot(exclude={best} if best is not None else set())
            if slot is None:
                if not idle_best:
                    raise KVCacheFullError(
                        f"all {len(self.slots)} KV sequences are in use; lower beams x children"
                    )
                slot = best
                self._truncate(slot, lcp)
            elif best is not None and lcp > 0:
                lla.seq_copy(self._ctx, best, slot, 0, lcp)
                self.slots.tokens[slot] = want[:lcp]
        self.slots.busy.add(slot)
        self.slots.touch(slot)
        return slot

    def _fork(self, src: int, n: int) -> list[int]:
        """n busy slots sharing ``src``'s cells."""
        out = []
        for _ in range(n):
            slot = self._take_slot(exclude={src})
            if slot is None:
                raise KVCacheFullError(f"cannot fork {n} sequences: only {len(self.slots)} KV sequences")
            lla.seq_copy(self._ctx, src, slot, 0, -1)
            self.slots.tokens[slot] = list(self.slots.tokens[src])
            self.slots.busy.add(slot)
            self.slots.touch(slot)
            out.append(slot)
        return out

    def _truncate(self, slot: int, n: int) -> None:
        if len(self.slots.tokens[slot]) > n:
            lla.seq_remove(self._ctx, slot, n, -1)
            del self.slots.tokens[slot][n:]

    def _release(self) -> None:
        self.slots.busy.clear()

    # --------------------------------------------------------- decode ---
    def _decode(self, batch: lla.Batch) -> None:
        t0 = time.perf_counter()
        while True:
            rc = lla.decode(self._ctx, batch)
            if rc == 0:
                break
            if rc == 1:  # no KV room; llama.cpp left the cache untouched
                victim = self.slots.eviction_candidate()
                if victim is None:
                    raise KVCacheFullError(
                        f"the KV cache ({self.n_ctx} tokens) is full; load with a larger n_ctx "
                        "or use fewer beams / children"
                    )
                self._evict(victim)
                continue
            raise SpecSearchError(f"llama_decode failed with status {rc}: {lla.recent_log()}")
        self.decode_calls += 1
        self.decoded_tokens += batch.n
        self.decode_seconds += time.perf_counter() - t0

    def _evaluate(
        self,
        jobs: list[tuple[int, Sequence[int], Sequence[int]]],
        row_fn: Callable[[np.ndarray, int, int], object] | None = None,
    ) -> list[list]:
        """Feed ``new_tokens`` to each job's slot; return copies of the logits
        at the requested offsets (indices into new_tokens), per job, or
        ``row_fn(logits_row_view, job, offset)`` of them (no copy of the row).

        Jobs are packed into as few decodes of at most n_batch tokens as possible.
        """
        results: list[list[np.ndarray]] = [[] for _ in jobs]
        pending: list[tuple[int, int]] = []  # (job, output row) of the current batch
        batch = self._batch
        batch.clear()
        fed: list[tuple[int, int]] = []  # (slot, token) fed in the current batch

        def flush() -> None:
            if batch.n == 0:
                return
            self._decode(batch)
            for slot, tok in fed:
                self.slots.tokens[slot].append(tok)
            if pending:
                rows = lla.output_logits(self._ctx, batch.n_outputs, self.n_vocab)
                for row, (job, k) in enumerate(pending):
                    results[job].append(np.array(rows[row]) if row_fn is None else row_fn(rows[row], job, k))
            pending.clear()
            fed.clear()
            batch.clear()

        for j, (slot, new_tokens, offsets) in enumerate(jobs):
            want = set(offsets)
            base = len(self.slots.tokens[slot])
            self.check_fits(base + len(new_tokens))
            for k, tok in enumerate(new_tokens):
                if batch.free == 0:
                    flush()
                    base = len(self.slots.tokens[slot]) - k
                out = k in want
                batch.add(tok, base + k, slot, out)
                fed.append((slot, tok))
                if out:
                    pending.append((j, k))
        flush()
        return results

    # ------------------------------------------------------- generate ---
    def prefill(self, prompts: Sequence[Sequence[int]], stats: GenerateStats) -> list[int]:
        """Busy slots holding ``prompt[:-1]`` for each prompt (shared prefix computed once)."""
        for p in prompts:
            if not p:
                raise SpecSearchError("empty prompt: nothing to condition on")
            self.check_fits(len(p) + 1)
        if len(prompts) > 1:
            common = list(prompts[0])
            for p in prompts[1:]:
                common = common[: common_prefix_len(common, list(p))]
            common = common[: min(len(p) for p in prompts) - 1]
            if len(common) > 1:
                slot = self._acquire(common, len(common))
                self._evaluate([(slot, common[len(self.slots.tokens[slot]) :], ())])
                self.slots.busy.discard(slot)
        slots, jobs = [], []
        for p in prompts:
            slot = self._acquire(p, len(p) - 1)
            cached = len(self.slots.tokens[slot])
            stats.prompt_tokens += len(p)
            stats.reused_tokens += cached
            slots.append(slot)
            jobs.append((slot, list(p[cached:-1]), ()))
        self._evaluate(jobs)
        return slots

    def generate(
        self,
        prompts: Sequence[Sequence[int]] | Sequence[int],
        n: int = 1,
        *,
        max_tokens: int = 128,
        sampling: SamplingParams = GREEDY,
        seeds: Sequence[int] | None = None,
        stop: Sequence[str] = (),
        logprobs: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> GenerateOutput:
        """n continuations of each prompt (token lists), decoded together.

        ``should_stop`` is polled once per decoding step; when it returns True
        every unfinished sequence ends with finish reason "cancelled".

        ``logprobs=False`` skips the per-token log-probabilities (a pass over
        the whole vocabulary per token; the search does not need them).

        Sequence k (prompt k // n, child k % n) samples with ``seeds[k]``
        (default: 0, 1, 2, ...): the same seed gives the same continuation
        whether it runs alone or batched with others.
        """
        prompts = _as_prompt_list(prompts)
        total = len(prompts) * n
        seeds = list(seeds) if seeds is not None else list(range(total))
        if len(seeds) != total:
            raise ValueError(f"need {total} seeds, got {len(seeds)}")
        with self._lock:
            stats = GenerateStats()
            t0 = time.perf_counter()
            calls0 = self.decode_calls
            try:
                gens = self._generate(prompts, n, max_tokens, sampling, seeds, stop, stats, logprobs, should_stop)
            finally:
                self._release()
            stats.wall_seconds = time.perf_counter() - t0
            stats.decode_calls = self.decode_calls - calls0
            stats.generated_tokens = sum(len(g.tokens) for g in gens)
            return GenerateOutput(gens, stats)

    def _generate(self, prompts, n, max_tokens, sampling, seeds, stop, stats, want_logprobs, should_stop) -> list[Generation]:
        prompt_slots = self.prefill(prompts, stats)
        # The prompts' last tokens go in one decode so all first samples come from it.
        batch = self._batch
        batch.clear()
        first_index = []
        for slot, p in zip(prompt_slots, prompts):
            first_index.append(batch.add(p[-1], len(self.slots.tokens[slot]), slot, True))
        self._decode(batch)
        for slot, p in zip(prompt_slots, prompts):
            self.slots.tokens[slot].append(p[-1])
        seq_slots, seq_index, seq_prompt = [], [], []
        for i, slot in enumerate(prompt_slots):
            children = self._fork(slot, n)
            seq_slots += children
            seq_index += [first_index[i]] * n
            seq_prompt += [i] * n
        chains = [
            lla.SamplerChain(sampling.temperature, sampling.top_k, sampling.top_p, sampling.min_p, s)
            for s in seeds
        ]
        checkers = [StopChecker(stop) for _ in seq_slots]
        tokens: list[list[int]] = [[] for _ in seq_slots]
        logprobs: list[list[float]] = [[] for _ in seq_slots]
        finish: list[str | None] = [None] * len(seq_slots)
        live = list(range(len(seq_slots)))
        n_out = batch.n_outputs
        while live:
            rows = lla.output_logits(self._ctx, n_out, self.n_vocab)
            sampled = [chains[k].sample(self._ctx, seq_index[k]) for k in live]
            if want_logprobs:
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
                elif len(tokens[k]) >= max_tokens:
                    finish[k] = "length"
                elif len(self.slots.tokens[seq_slots[k]]) + 1 >= self.n_ctx:
                    finish[k] = "context"
            live = [k for k in live if finish[k] is None]
            if live and should_stop is not None and should_stop():
                for k in live:
                    finish[k] = "cancelled"
                live = []
            if not live:
                break
            batch.clear()
            for k in live:
                slot = seq_slots[k]
                seq_index[k] = batch.add(tokens[k][-1], len(self.slots.tokens[slot]), slot, True)
            self._decode(batch)
            for k in live:
                self.slots.tokens[seq_slots[k]].append(tokens[k][-1])
            n_out = batch.n_outputs
        for c in chains:
            c.close()
        return [
            Generation(checkers[k].finish(), tokens[k], logprobs[k], finish[k] or "length", seq_prompt[k])
            for k in range(len(seq_slots))
        ]

    # ---------------------------------------------------------- score ---
    def score(self, requests: Sequence[ScoreRequest], reuse: bool = True) -> list[np.ndarray]:
        """For each request an array [len(positions), len(candidates)] of
        log-softmax values: log P(candidate | tokens[: position + 1])."""
        with self._lock:
            try:
                return self._score(requests, reuse)
            finally:
                self._release()

    def _score(self, requests: Sequence[ScoreRequest], reuse: bool) -> list[np.ndarray]:
        if not requests:
            return []
        for r in requests:
            if not r.positions:
                raise ValueError("a score request needs at least one position")
            if min(r.positions) < 0 or max(r.positions) >= len(r.tokens):
                raise ValueError("score positions must index the request's tokens")
            self.check_fits(len(r.tokens), "scoring input")
        if not reuse:
            self.reset_cache()
        limits = [min(r.positions) for r in requests]
        if reuse and len(requests) > 1:
            common = list(requests[0].tokens)
            for r in requests[1:]:
                common = common[: common_prefix_len(common, list(r.tokens))]
            common = common[: min(limits)]
            if len(common) > 1:
                slot = self._acquire(common, len(common))
                self._evaluate([(slot, common[len(self.slots.tokens[slot]) :], ())])
                self.slots.busy.discard(slot)
        jobs = []
        for r, limit in zip(requests, limits):
            slot = self._acquire(r.tokens, limit if reuse else 0)
            cached = len(self.slots.tokens[slot])
            jobs.append((slot, list(r.tokens[cached:]), [p - cached for p in r.positions]))
        rows = self._evaluate(jobs)
        out = []
        for r, job_rows in zip(requests, rows):
            block = np.stack(job_rows)
            out.append(log_softmax_at(block, list(r.candidates)))
        return out

    # ------------------------------------------------- hidden states ---
    def hidden_states(self, requests: Sequence[HiddenRequest], reuse: bool = True) -> list[HiddenResult]:
        """Final hidden states at given positions (learned PRM heads read them).

        Tokens before each wanted position are evaluated with embeddings off
        (llama.cpp would otherwise output every token of a long prefill); the
        wanted tokens of all requests go in one decode with embeddings on.
        """
        with self._lock:
            try:
                return self._hidden_states(requests, reuse)
            finally:
                lla.set_embeddings(self._ctx, False)
                self._release()

    def _hidden_states(self, requests: Sequence[HiddenRequest], reuse: bool) -> list[HiddenResult]:
        for r in requests:
            if not r.positions:
                raise ValueError("a hidden-state request needs at least one position")
            if list(r.positions) != sorted(set(r.positions)) or r.positions[0] < 0 or r.positions[-1] >= len(r.tokens):
                raise ValueError("hidden-state positions must be increasing indices into the request's tokens")
            if r.logprob_from is not None and not 1 <= r.logprob_from <= r.positions[0]:
                raise ValueError("logprob_from must lie in [1, first position]")
            self.check_fits(len(r.tokens), "scoring input")
        if not reuse:
            self.reset_cache()
        # A cached prefix may cover at most the tokens before the first wanted
        # position (and before the first token whose log-prob is wanted).
        limits = [min(r.positions[0], r.logprob_from - 1 if r.logprob_from else r.positions[0]) for r in requests]
        slots = [self._acquire(r.tokens, limit if reuse else 0) for r, limit in zip(requests, limits)]
        done = [len(self.slots.tokens[s]) for s in slots]  # tokens already in each slot
        hidden: list[list[np.ndarray]] = [[] for _ in requests]
        logps: list[list[float]] = [[] for _ in requests]
        n_embd = self.facts.n_embd
        for round_ in range(max(len(r.positions) for r in requests)):
            active = [i for i, r in enumerate(requests) if round_ < len(r.positions)]
            # 1. Embeddings off: each request's tokens up to its next wanted position.
            #    Outputs only where a token's log-prob is wanted: the logits at
            #    absolute index t predict token t + 1.
            jobs = []
            for i in active:
                r = requests[i]
                new = list(r.tokens[done[i] : r.positions[round_]])
                start = r.logprob_from if r.logprob_from is not None else len(r.tokens) + 1
                offs = [k for k in range(len(new)) if done[i] + k + 1 >= start]
                jobs.append((slots[i], new, offs))
            starts = [done[i] for i in active]

            def next_logprob(row: np.ndarray, j: int, k: int) -> float:
                return _logprob_of(row, requests[active[j]].tokens[starts[j] + k + 1])

            rows = self._evaluate(jobs, row_fn=next_logprob)
            for j, i in enumerate(active):
                logps[i] += rows[j]
                done[i] += len(jobs[j][1])
            # 2. Embeddings on: the wanted tokens of all requests in one decode.
            batch = self._batch
            batch.clear()
            index = {i: batch.add(requests[i].tokens[requests[i].positions[round_]], done[i], slots[i], True)
                     for i in active}
            lla.set_embeddings(self._ctx, True)
            try:
                self._decode(batch)
            finally:
                lla.set_embeddings(self._ctx, False)
            # With embeddings on every token of the batch is an output, in batch order.
            logits = lla.output_logits(self._ctx, batch.n, self.n_vocab)
            for i in active:
                r = requests[i]
                pos = r.positions[round_]
                self.slots.tokens[slots[i]].append(r.tokens[pos])
                hidden[i].append(lla.output_hidden(self._ctx, index[i], n_embd))
                if r.logprob_from is not None and pos + 1 < len(r.tokens):
                    logps[i].append(_logprob_of(logits[index[i]], r.tokens[pos + 1]))
                done[i] += 1
        # 3. Log-probs wanted after the last position: embeddings off again.
        tail_jobs, tail_of = [], []
        for i, r in enumerate(requests):
            if r.logprob_from is not None and done[i] < len(r.tokens) - 1:
                new = list(r.tokens[done[i] : len(r.tokens) - 1])
                tail_jobs.append((slots[i], new, list(range(len(new)))))
                tail_of.append(i)
        if tail_jobs:
            tail_starts = [done[i] for i in tail_of]
            rows = self._evaluate(
                tail_jobs,
                row_fn=lambda row, j, k: _logprob_of(row, requests[tail_of[j]].tokens[tail_starts[j] + k + 1]),
            )
            for j, i in enumerate(tail_of):
                logps[i] += rows[j]
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
        with self._lock:
            if getattr(self, "_ctx", None):
                self._batch.close()
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


def _as_prompt_list(prompts: Sequence[Sequence[int]] | Sequence[int]) -> list[list[int]]:
    if prompts and isinstance(prompts[0], (int, np.integer)):
        return [list(prompts)]  # type: ignore[arg-type]
    return [list(p) for p in prompts]  # type: ignore[union-attr]

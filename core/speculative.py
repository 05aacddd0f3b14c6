"""Token-level speculative decoding: a draft engine proposes, the target verifies.

Each round, every live sequence gets k draft tokens (k draft decodes, all
sequences batched), then the target evaluates ``[last token] + drafts`` for
all sequences in one batch.  Greedy: drafts are kept while they equal the
target's argmax, then the target's own token is appended, so the output is
exactly the target's greedy output.  Sampling: draft token d with draft
probability q(d) is kept with probability min(1, p(d)/q(d)); on the first
rejection a token is drawn from normalise(max(0, p - q)); if all k are kept a
bonus token is drawn from p (Leviathan et al. 2023; Chen et al. 2023), so the
output distribution is the target's.

k adapts: a cost model (decode time as a + b * tokens-in-batch for each
engine, acceptance probability alpha) picks the k with the highest expected
tokens per second, k = 0 (plain target decoding) when drafting does not pay,
with an occasional probe round to notice when it starts paying.

Both engines are driven through their public KV-lease API (Engine.lease,
lease_prompts, evaluate; KVLease.fork / truncate), never their internals.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from .engine import Engine, Feed
from .generation import GenerateOutput, GenerateRequest, GenerateStats, Generation, StopChecker, TokenGenerator
from .kv_slots import KVLease
from .errors import IncompatibleVocabError, KVCacheFullError
from .sampling import distribution, log_softmax_at, sample_from

MAX_VOCAB_SIZE_DIFF = 128  # as llama.cpp's own speculative example allows


def check_vocab_compatible(target: Engine, draft: Engine) -> None:
    """Raise IncompatibleVocabError unless draft token ids mean the same as the target's."""
    if target.info.vocab_fingerprint == draft.info.vocab_fingerprint:
        return
    t_name, d_name = target.info.name, draft.info.name
    diff = abs(target.n_vocab - draft.n_vocab)
    if diff > MAX_VOCAB_SIZE_DIFF:
        raise IncompatibleVocabError(
            f"draft {d_name!r} has {draft.n_vocab} tokens, target {t_name!r} has {target.n_vocab}: "
            "different vocabularies cannot be used for speculative decoding"
        )
    for tok in range(min(target.n_vocab, draft.n_vocab)):
        a, b = target.vocab.text(tok), draft.vocab.text(tok)
        if a != b:
            raise IncompatibleVocabError(
                f"draft {d_name!r} and target {t_name!r} have different vocabularies: "
                f"token {tok} is {b!r} in the draft but {a!r} in the target"
            )


class _LinearCost:
    """Online least squares fit of seconds = a + b * tokens, with forgetting."""

    def __init__(self, decay: float = 0.9) -> None:
        self.decay = decay
        self.s = np.zeros(5)  # sum w, w*x, w*x^2, w*y, w*x*y

    def add(self, tokens: int, seconds: float) -> None:
        x, y = float(tokens), float(seconds)
        self.s = self.s * self.decay + np.array([1.0, x, x * x, y, x * y])

    @property
    def known(self) -> bool:
        return self.s[0] > 0

    def predict(self, tokens: int) -> float:
        w, sx, sxx, sy, sxy = self.s
        var = sxx * w - sx * sx
        if var > 1e-9 * max(w * sxx, 1e-12):
            b = (w * sxy - sx * sy) / var
            a = (sy - b * sx) / w
            if a >= 0 and b >= 0:
                return a + b * tokens
        # One batch size seen so far: assume time grows in proportion (pessimistic for drafting).
        return sy / sx * tokens if sx > 0 else 0.0


@dataclass
class AdaptiveDraftLength:
    """Chooses k per round: greedy from measured costs and acceptance,
    sampling from a static cost model (see _choose_static)."""

    k_init: int = 4
    k_max: int = 8
    adaptive: bool = True
    alpha: float = 0.7  # acceptance probability per drafted token (EMA)
    draft_cost: _LinearCost = field(default_factory=_LinearCost)
    target_cost: _LinearCost = field(default_factory=_LinearCost)
    draft_ratio: float = 0.5  # static model: a draft step's cost in target steps
    verify_growth: float = 1.0  # static model: extra cost per verified draft token
    probe_factor: float = 20.0
    _plain_seconds: float = 0.0
    _plain_measured: bool = False

    def observe_acceptance(self, accepted: int, tested: int) -> None:
        if tested:
            w = min(1.0, tested / 16)
            self.alpha = (1 - w) * self.alpha + w * (accepted / tested)

    def expected_rate(self, k: int, n: int) -> float:
        a = min(self.alpha, 0.999)
        tokens = n * (1 - a ** (k + 1)) / (1 - a)
        seconds = self.target_cost.predict(n * (k + 1)) + k * self.draft_cost.predict(n)
        return tokens / seconds if seconds > 0 else 0.0

    def choose(self, n: int, greedy: bool, alpha: float, catchup_tokens: int = 0) -> int:
        if not self.adaptive:
            return self.k_init
        if not greedy:
            return self._choose_static(alpha)
        if not self.draft_cost.known:
            return self.k_init  # first round: measure drafting
        if not self._plain_measured:
            self._plain_measured = True
            return 0  # second round: measure plain decoding
        best = self.best_k(n)
        if best > 0:
            self.probe_factor = 20.0
            self._plain_seconds = 0.0
            return best
        # Probe now and then: has drafting started to pay?  A probe costs the
        # draft's catch-up plus one drafted round; it is made only once plain
        # rounds have taken probe_factor times that, and every probe that finds
        # plain decoding still best doubles the factor.
        k = max(2, min(self.k_init, self.k_max))
        probe_cost = (self.draft_cost.predict(catchup_tokens + n) + (k - 1) * self.draft_cost.predict(n)
                      + self.target_cost.predict(n * (k + 1)) - self.target_cost.predict(n))
        if self._plain_seconds >= self.probe_factor * probe_cost:
            self._plain_seconds = 0.0
            self.probe_factor = min(self.probe_factor * 2, 640.0)
            return k
        return 0

    def best_k(self, n: int) -> int:
        """The draft length with the highest expected rate for ``n`` sequences (0: plain decoding)."""
        return max(range(self.k_max + 1), key=lambda k: self.expected_rate(k, n))

    def drafting_pays(self, greedy: bool, n: int) -> bool:
        """Whether this adaptive policy would draft for ``n`` sequences rather than decode plainly
        (greedy: by the measured costs, True until both are measured, since the decoder measures
        them itself; sampling: by the static cost model)."""
        if not greedy:
            return not self.drafting_never_pays()
        if not (self.draft_cost.known and self.target_cost.known):
            return True
        return self.best_k(n) > 0

    def observe_plain(self, seconds: float) -> None:
        self._plain_seconds += seconds

    def _choose_static(self, alpha: float) -> int:
        """Sampled output depends on k (not its distribution), so for sampling k
        must not depend on wall-clock timings, or the same seed would not give
        the same text twice.  This choice uses only the call's own acceptance
        history and a static cost model: a draft step costs ``draft_ratio`` of
        a target step; verifying k+1 tokens costs 1 + ``verify_growth`` * k.
        """
        a = min(alpha, 0.999)

        def rate(k: int) -> float:
            return (1 - a ** (k + 1)) / (1 - a) / (1 + self.verify_growth * k + self.draft_ratio * k)

        return max(range(self.k_max + 1), key=rate)

    def drafting_never_pays(self) -> bool:
        """Under the static cost model k drafted tokens yield at most k + 1 tokens
        for 1 + k * (verify_growth + draft_ratio) step costs: never more than
        plain decoding's 1 per step when verify_growth + draft_ratio >= 1."""
        return self.verify_growth + self.draft_ratio >= 1.0


class SpeculativeDecoder(TokenGenerator):
    """Target engine + draft engine; ``generate`` mirrors Engine.generate.

    Works on the engines' public KV-lease API only (tests/test_architecture.py
    checks): the target's prompt leases and their forks, and draft leases
    taken on first use, are all released when a call ends, also on errors.
    """

    def __init__(self, target: Engine, draft: Engine, k: int = 4, adaptive: bool = True, k_max: int = 8) -> None:
        check_vocab_compatible(target, draft)
        self.target = target
        self.draft = draft
        self.policy = AdaptiveDraftLength(k_init=k, k_max=max(k, k_max), adaptive=adaptive)
        # Static costs for sampling mode: decoding is memory-bound, so a step
        # costs in proportion to the weights read; on the CPU verification is
        # compute-bound (k+1 tokens cost ~k+1 steps), on a GPU nearly flat.
        self.policy.draft_ratio = draft.info.file_size / max(1, target.info.file_size)
        self.policy.verify_growth = 0.1 if target.offload.layers > 0 else 1.0  # layers it got, not asked for

    def run(self, request: GenerateRequest) -> GenerateOutput:
        """``generate`` (see TokenGenerator.generate) with its arguments packed."""
        if self.policy.adaptive and not request.sampling.greedy and self.policy.drafting_never_pays():
            # Plain decoding is what adaptive k would settle on; the native
            # sampler does it without copying logits out of llama.cpp.
            return self.target.run(request)
        stats = GenerateStats()
        t0 = time.perf_counter()
        # Target lock first, then the draft's (taken with the first draft lease).
        with self.target.lease_prompts(request.prompts, stats) as prompt_leases, ExitStack() as draft_leases:
            gens = _SpecRun(self, request, stats, prompt_leases, draft_leases).run()
        stats.wall_seconds = time.perf_counter() - t0
        stats.generated_tokens = sum(len(g.tokens) for g in gens)
        return GenerateOutput(gens, stats)


class _SpecRun:
    """State of one speculative generate call."""

    def __init__(self, dec: SpeculativeDecoder, request: GenerateRequest, stats: GenerateStats,
                 prompt_leases: list[KVLease], draft_leases: ExitStack) -> None:
        self.dec, self.t, self.d = dec, dec.target, dec.draft
        self.request, self.stats = request, stats
        self.sampling, self.max_tokens = request.sampling, request.max_tokens
        self.rngs = [np.random.default_rng(s) for s in request.seeds]
        self.checkers = [StopChecker(request.stop) for _ in request.seeds]
        self.prompt_of = request.prompt_of
        self.ctx = [list(request.prompts[i]) for i in self.prompt_of]
        self.out: list[list[int]] = [[] for _ in self.ctx]
        self.logprobs: list[list[float]] = [[] for _ in self.ctx]
        self.finish: list[str | None] = [None] * len(self.ctx)
        # Each target lease holds a prefix of ctx[s] (prompt[:-1] at first).
        self.t_leases = [fork for lease in prompt_leases for fork in lease.fork(request.n)]
        # Draft leases are taken on first use: when drafting does not pay, the
        # draft model never spends time on the prompt.
        self.d_leases: list[KVLease | None] = [None] * len(self.ctx)
        self.draft_leases = draft_leases
        self.drafting = True  # False once the draft's KV cache could not hold every sequence
        self.accepted = self.tested = 0

    def run(self) -> list[Generation]:
        should_stop = self.request.should_stop
        live = list(range(len(self.ctx)))
        while live:
            # prior 0.7 for acceptance, then this call's own history
            alpha = (self.accepted + 0.7 * 8) / (self.tested + 8)
            catchup = sum(len(self.ctx[s]) - self._draft_held(s) for s in live)
            k = self.dec.policy.choose(len(live), self.sampling.greedy, alpha, catchup) if self.drafting else 0
            try:
                self._round(live, k)
            except KVCacheFullError:
                # No room in the target's cache for the next tokens: the sequences end with what they have.
                for s in live:
                    self.finish[s] = "context"
                break
            live = [s for s in live if self.finish[s] is None]
            if live and should_stop is not None and should_stop():
                for s in live:
                    self.finish[s] = "cancelled"
                live = []
        return [
            Generation(self.checkers[s].finish(), self.out[s], self.logprobs[s], self.finish[s] or "length", self.prompt_of[s])
            for s in range(len(self.ctx))
        ]

    def _draft_held(self, s: int) -> int:
        lease = self.d_leases[s]
        return len(lease) if lease is not None else 0

    def _draft_lease(self, s: int) -> KVLease:
        lease = self.d_leases[s]
        if lease is None:
            lease = self.d_leases[s] = self.draft_leases.enter_context(self.d.lease(self.ctx[s]))
        return lease

    def _room(self, s: int) -> int:
        """Most tokens sequence s may still emit."""
        return min(self.max_tokens - len(self.out[s]), self.t.n_ctx - 1 - len(self.ctx[s]))

    def _round(self, live: list[int], k: int) -> None:
        policy = self.dec.policy
        ks = {s: max(0, min(k, self._room(s) - 1, self.d.n_ctx - 1 - len(self.ctx[s]))) for s in live}
        drafts: dict[int, list[int]] = {s: [] for s in live}
        q: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {s: [] for s in live}
        try:
            self._draft(live, ks, drafts, q)
        except KVCacheFullError:
            # Drafting only saves time: without room for it the call goes on without drafts.
            self.drafting = False
            drafts, q = {s: [] for s in live}, {s: [] for s in live}
        # Verify: one target batch with [last token] + drafts of every sequence.
        feeds = []
        for s in live:
            lease = self.t_leases[s]
            new = self.ctx[s][len(lease):] + drafts[s]
            first = len(new) - len(drafts[s]) - 1
            feeds.append(Feed(lease, new, list(range(first, len(new)))))
        calls0 = self.t.decode_calls
        t0 = time.perf_counter()
        rows = self.t.evaluate(feeds)
        dt = time.perf_counter() - t0
        policy.target_cost.add(sum(len(f.tokens) for f in feeds), dt)
        if k == 0:
            policy.observe_plain(dt)
        self.stats.target_seconds += dt
        self.stats.target_passes += self.t.decode_calls - calls0
        self.stats.decode_calls += self.t.decode_calls - calls0
        accepted_all = tested_all = 0
        for s, target_rows in zip(live, rows):
            emitted, m = self._accept(s, drafts[s], q[s], target_rows)
            self.stats.drafted += len(drafts[s])
            self.stats.accepted += m
            accepted_all += m
            tested_all += m + (1 if m < len(drafts[s]) else 0)
            base = len(self.ctx[s])
            for tok, row in zip(emitted, target_rows):
                self._emit(s, tok, row)
                if self.finish[s] is not None:
                    break
            # Caches keep what the new context shares with what they were fed.
            self.t_leases[s].truncate(base + m)
            if self.d_leases[s] is not None:
                self.d_leases[s].truncate(base + min(m, max(len(drafts[s]) - 1, 0)))
        policy.observe_acceptance(accepted_all, tested_all)
        self.accepted += accepted_all
        self.tested += tested_all

    def _draft(self, live: list[int], ks: dict[int, int], drafts: dict[int, list[int]],
               q: dict[int, list[tuple[np.ndarray, np.ndarray]]]) -> None:
        """Draft: k batched decodes; step 0 also feeds whatever the draft has not seen."""
        policy = self.dec.policy
        for step in range(max(ks.values(), default=0)):
            active = [s for s in live if step < ks[s]]
            feeds = []
            for s in active:
                lease = self._draft_lease(s)
                held = len(lease)
                seq = self.ctx[s] + drafts[s]
                feeds.append(Feed(lease, seq[held:], [len(seq) - held - 1]))
            t0 = time.perf_counter()
            rows = self.d.evaluate(feeds)
            dt = time.perf_counter() - t0
            policy.draft_cost.add(sum(len(f.tokens) for f in feeds), dt)
            self.stats.draft_seconds += dt
            for s, (row,) in zip(active, rows):
                ids, probs = distribution(row, self.sampling)
                tok = int(ids[0]) if self.sampling.greedy else sample_from(ids, probs, self.rngs[s])
                drafts[s].append(tok)
                q[s].append((ids, probs))

    def _accept(self, s, drafts, q, rows) -> tuple[list[int], int]:
        """Tokens to emit and how many drafts were accepted."""
        if self.sampling.greedy:
            m = 0
            while m < len(drafts) and drafts[m] == int(np.argmax(rows[m])):
                m += 1
            return drafts[:m] + [int(np.argmax(rows[m]))], m
        rng = self.rngs[s]
        n_vocab = max(self.t.n_vocab, self.d.n_vocab)
        for i, tok in enumerate(drafts):
            p_ids, p_probs = distribution(rows[i], self.sampling)
            q_ids, q_probs = q[i]
            p_tok = float(p_probs[p_ids == tok].sum())
            q_tok = float(q_probs[q_ids == tok].sum())
            if rng.random() * q_tok < p_tok:  # accept with probability min(1, p/q)
                continue
            p = np.zeros(n_vocab)
            p[p_ids] = p_probs
            p[q_ids] -= q_probs
            np.maximum(p, 0.0, out=p)
            support = np.nonzero(p)[0]
            return drafts[:i] + [sample_from(support, p[support], rng)], i
        p_ids, p_probs = distribution(rows[len(drafts)], self.sampling)
        return drafts + [sample_from(p_ids, p_probs, rng)], len(drafts)

    def _emit(self, s: int, tok: int, row: np.ndarray) -> None:
        self.ctx[s].append(tok)
        self.out[s].append(tok)
        if self.request.logprobs:
            self.logprobs[s].append(float(log_softmax_at(row, [tok])[0]))
        if self.t.is_eog(tok):
            self.finish[s] = "eos"
        elif self.checkers[s].push(self.t.vocab.piece(tok)):
            self.finish[s] = "stop"
        elif len(self.out[s]) >= self.max_tokens:
            self.finish[s] = "length"
        elif len(self.ctx[s]) + 1 >= self.t.n_ctx:
            self.finish[s] = "context"

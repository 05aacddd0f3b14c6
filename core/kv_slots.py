"""Which tokens each KV-cache sequence holds, and who holds it (a lease).

The engine owns one llama.cpp context whose unified KV cache holds up to
``n_slots`` sequences ("slots": llama.cpp sequence ids 0..n_slots-1).
``KVSlots`` is the only code that edits those sequences, so it keeps these
invariants itself:

* slot i holds ``held(i)`` at positions 0..len-1: every cache edit (copy,
  remove, clear) goes through the table, and decoded tokens are recorded
  with ``record`` once llama_decode has stored them;
* ``lease`` starts from the slot sharing the longest prefix with the
  request (extended in place, or its cells shared with a new slot);
* a leased slot is never handed out again until its lease is released;
* a released slot keeps its tokens for later prefix reuse, and is the
  first to be evicted (least recently used) when another request needs room.

A ``KVLease`` is one leased slot.  It holds the engine's lock from creation
to release (see Engine): use it in a ``with`` block, on one thread.
"""

from __future__ import annotations

import itertools
import threading
from typing import Protocol, Sequence

from .errors import KVCacheFullError, SpecSearchError


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def distinct_prefix_cells(token_lists: Sequence[Sequence[int]]) -> int:
    """KV cells ``token_lists`` take when sequences sharing a prefix share its cells
    (the size of their prefix tree): sorted, each list adds what it does not share
    with the one before it."""
    ordered = sorted(tuple(t) for t in token_lists)
    return sum(len(t) - common_prefix_len(prev, t) for prev, t in zip([()] + ordered, ordered))


class KVCache(Protocol):
    """The cache operations the table performs (llama.cpp's memory API)."""

    def remove(self, slot: int, start: int) -> None:
        """Drop the slot's positions from ``start`` on."""

    def copy(self, src: int, dst: int, n: int) -> None:
        """Make ``dst`` share ``src``'s cells for positions [0, n) (n = -1: all)."""

    def clear(self) -> None:
        """Drop every sequence."""


class KVSlots:
    def __init__(self, n_slots: int, cache: KVCache, lock: threading.RLock | None = None) -> None:
        self._cache = cache
        self._lock = lock if lock is not None else threading.RLock()
        self._tokens: list[list[int]] = [[] for _ in range(n_slots)]
        self._last_used = [0] * n_slots
        self._clock = itertools.count(1)
        self._leased: set[int] = set()

    def __len__(self) -> int:
        return len(self._tokens)

    def held(self, slot: int) -> tuple[int, ...]:
        """The tokens slot ``slot`` holds, at positions 0..len-1."""
        return tuple(self._tokens[slot])

    def n_held(self, slot: int) -> int:
        return len(self._tokens[slot])

    def is_leased(self, slot: int) -> bool:
        return slot in self._leased

    @property
    def n_leased(self) -> int:
        """Sequences leased now (0 between calls: any other count is a leak)."""
        return len(self._leased)

    # ------------------------------------------------------- leasing ---
    def lease(self, tokens: Sequence[int], reuse_limit: int) -> "KVLease":
        """A slot holding the longest cached prefix of ``tokens[:reuse_limit]``
        (0: an empty slot).  Takes the lock until the lease is released."""
        self._lock.acquire()
        try:
            return KVLease(self, self._acquire(list(tokens[: max(0, reuse_limit)])))
        except BaseException:
            self._lock.release()
            raise

    def _acquire(self, want: list[int]) -> int:
        best, lcp = self._best_prefix(want)
        idle_best = best is not None and best not in self._leased
        if idle_best and lcp == len(self._tokens[best]):
            slot = best  # the cached sequence is a prefix of the request: extend in place
        else:
            slot = self._take_slot(exclude={best} if best is not None else set())
            if slot is None:
                if not idle_best:
                    raise KVCacheFullError(
                        f"all {len(self)} KV sequences are in use; lower beams x children"
                    )
                slot = best
                self._truncate(slot, lcp)
            elif best is not None and lcp > 0:
                self._cache.copy(best, slot, lcp)
                self._tokens[slot] = want[:lcp]
        self._mark_leased(slot)
        return slot

    def _fork(self, src: int, n: int) -> list[int]:
        """n new leased slots sharing ``src``'s cells (all or none)."""
        out: list[int] = []
        for _ in range(n):
            slot = self._take_slot(exclude={src})
            if slot is None:
                for taken in out:
                    self._release(taken)
                raise KVCacheFullError(f"cannot fork {n} sequences: only {len(self)} KV sequences")
            self._cache.copy(src, slot, -1)
            self._tokens[slot] = list(self._tokens[src])
            self._mark_leased(slot)
            out.append(slot)
        return out

    def _mark_leased(self, slot: int) -> None:
        self._leased.add(slot)
        self._last_used[slot] = next(self._clock)

    def _release(self, slot: int) -> None:
        self._leased.discard(slot)

    def _truncate(self, slot: int, n: int) -> None:
        if len(self._tokens[slot]) > n:
            self._cache.remove(slot, n)
            del self._tokens[slot][n:]

    # ------------------------------------------------ decoded tokens ---
    def record(self, slot: int, tokens: Sequence[int]) -> None:
        """``tokens`` were decoded into leased ``slot`` after what it held."""
        if slot not in self._leased:
            raise SpecSearchError(f"KV sequence {slot} was decoded into without a lease")
        self._tokens[slot].extend(tokens)

    # ------------------------------------------------------ eviction ---
    def evict_idle(self) -> bool:
        """Drop the least recently used unleased sequence; False when there is none."""
        slot = self._eviction_candidate()
        if slot is None:
            return False
        self._evict(slot)
        return True

    def clear(self) -> None:
        """Drop every sequence (no lease may be open)."""
        with self._lock:
            if self._leased:
                raise SpecSearchError("cannot clear the KV cache while sequences are leased")
            self._cache.clear()
            for held in self._tokens:
                held.clear()

    def _evict(self, slot: int) -> None:
        self._cache.remove(slot, 0)
        self._tokens[slot] = []

    def _take_slot(self, exclude: set[int]) -> int | None:
        """An empty unleased slot, else the least recently used idle one, emptied."""
        for slot, held in enumerate(self._tokens):
            if not held and slot not in self._leased:
                return slot
        slot = self._eviction_candidate(exclude)
        if slot is not None:
            self._evict(slot)
        return slot

    def _best_prefix(self, tokens: list[int]) -> tuple[int | None, int]:
        """The slot sharing the longest prefix with ``tokens``, and that length
        (leased slots count: their cells can be shared)."""
        best, best_len = None, 0
        if not tokens:
            return best, best_len
        for slot, held in enumerate(self._tokens):
            if held and held[0] == tokens[0]:
                n = common_prefix_len(held, tokens)
                if n > best_len:
                    best, best_len = slot, n
        return best, best_len

    def _eviction_candidate(self, exclude: set[int] = frozenset()) -> int | None:
        """The least recently used idle, non-empty slot."""
        idle = [
            s for s in range(len(self._tokens))
            if s not in self._leased and s not in exclude and self._tokens[s]
        ]
        return min(idle, key=lambda s: self._last_used[s]) if idle else None


class KVLease:
    """One leased KV sequence: its cells are the holder's until ``release``
    (or the end of the ``with`` block, also on an exception).  Forked
    leases are released with the lease they were forked from."""

    def __init__(self, table: KVSlots, slot: int) -> None:
        self._table = table
        self._slot: int | None = slot
        self._forks: list[KVLease] = []

    @property
    def slot(self) -> int:
        """The llama.cpp sequence id (only while leased)."""
        if self._slot is None:
            raise SpecSearchError("KV lease used after it was released")
        return self._slot

    def belongs_to(self, table: KVSlots) -> bool:
        return self._table is table

    @property
    def tokens(self) -> tuple[int, ...]:
        """What the sequence holds in the KV cache."""
        return self._table.held(self.slot)

    def __len__(self) -> int:
        """Tokens held: the position the next decoded token takes."""
        return self._table.n_held(self.slot)

    def fork(self, n: int) -> list["KVLease"]:
        """n new leases sharing this sequence's cells (nothing recomputed)."""
        with self._table._lock:
            slots = self._table._fork(self.slot, n)
            for _ in slots:
                self._table._lock.acquire()  # each fork holds the lock until released
        forks = [KVLease(self._table, s) for s in slots]
        self._forks += forks
        return forks

    def truncate(self, n: int) -> None:
        """Keep only the first n tokens."""
        with self._table._lock:
            self._table._truncate(self.slot, n)

    def release(self) -> None:
        """Give the sequence (and its forks) back; its tokens stay cached for reuse."""
        if self._slot is None:
            return
        for fork in self._forks:
            fork.release()
        self._table._release(self._slot)
        self._slot = None
        self._table._lock.release()

    def __enter__(self) -> "KVLease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

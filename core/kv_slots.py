"""Bookkeeping of which tokens each KV-cache sequence holds (pure Python).

The engine owns one llama.cpp context whose unified KV cache holds up to
``n_slots`` sequences.  This table mirrors it: slot i holds ``tokens[i]`` at
positions 0..len-1.  It answers "which slot shares the longest prefix with
these tokens" (prefix reuse) and "which slot can I take" (free first, then
the least recently used idle one).
"""

from __future__ import annotations

import itertools


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class KVSlots:
    def __init__(self, n_slots: int) -> None:
        self.tokens: list[list[int]] = [[] for _ in range(n_slots)]
        self._last_used = [0] * n_slots
        self._clock = itertools.count(1)
        self.busy: set[int] = set()  # slots used by the running operation

    def __len__(self) -> int:
        return len(self.tokens)

    def touch(self, slot: int) -> None:
        self._last_used[slot] = next(self._clock)

    def best_prefix(self, tokens: list[int]) -> tuple[int | None, int]:
        """The slot sharing the longest prefix with ``tokens``, and that length."""
        best, best_len = None, 0
        for slot, held in enumerate(self.tokens):
            if held and held[0] == (tokens[0] if tokens else None):
                n = common_prefix_len(held, tokens)
                if n > best_len:
                    best, best_len = slot, n
        return best, best_len

    def free_slot(self) -> int | None:
        for slot, held in enumerate(self.tokens):
            if not held and slot not in self.busy:
                return slot
        return None

    def eviction_candidate(self, exclude: set[int] = frozenset()) -> int | None:
        """The least recently used idle, non-empty slot."""
        idle = [
            s for s in range(len(self.tokens))
            if s not in self.busy and s not in exclude and self.tokens[s]
        ]
        return min(idle, key=lambda s: self._last_used[s]) if idle else None

    def total_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)

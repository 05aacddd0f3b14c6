"""The KV slot table's invariants, on a model of llama.cpp's sequence memory.

``CellCache`` stands in for the KV cache the way llama.cpp's memory API
behaves: a sequence is a list of cells by position, ``copy`` shares cells,
``remove`` drops positions.  Each cell remembers the token decoded into it,
so "each slot's tokens are what its cache sequence holds" can be checked
exactly.  (The same operations on the real cache: tests/test_kv_lease.py.)
"""

from __future__ import annotations

import random
import threading

import pytest

from specsearch.core.errors import KVCacheFullError, SpecSearchError
from specsearch.core.kv_slots import KVSlots, common_prefix_len


class CellCache:
    def __init__(self, n_slots: int) -> None:
        self.cells: list[list[int]] = [[] for _ in range(n_slots)]
        self.copies = 0

    def decode(self, slot: int, tokens) -> None:
        self.cells[slot] += list(tokens)

    def remove(self, slot: int, start: int) -> None:
        del self.cells[slot][start:]

    def copy(self, src: int, dst: int, n: int) -> None:
        # llama.cpp adds dst to src's cells; the table only copies into empty sequences
        assert not self.cells[dst], "copied onto a sequence that still holds cells"
        self.cells[dst] = list(self.cells[src] if n < 0 else self.cells[src][:n])
        self.copies += 1

    def clear(self) -> None:
        for cells in self.cells:
            cells.clear()


def make(n_slots: int = 4) -> tuple[KVSlots, CellCache]:
    cache = CellCache(n_slots)
    return KVSlots(n_slots, cache), cache


def decode(table: KVSlots, cache: CellCache, lease, tokens) -> None:
    """What the engine does: llama_decode stores the tokens, then the table records them."""
    cache.decode(lease.slot, tokens)
    table.record(lease.slot, tokens)


def assert_mirrors(table: KVSlots, cache: CellCache) -> None:
    for slot in range(len(table)):
        assert table.held(slot) == tuple(cache.cells[slot]), f"slot {slot} differs from its cache sequence"


class TestPrefixReuse:
    def test_a_released_sequence_is_extended_in_place(self):
        table, cache = make()
        with table.lease([1, 2, 3], 0) as first:
            decode(table, cache, first, [1, 2, 3])
            slot = first.slot
        with table.lease([1, 2, 3, 4, 5], 4) as again:
            assert again.slot == slot and again.tokens == (1, 2, 3)
        assert cache.copies == 0
        assert_mirrors(table, cache)

    def test_the_longest_common_prefix_is_chosen(self):
        table, cache = make()
        for tokens in ([1, 2, 9, 9], [1, 2, 3, 4, 8], [1, 2, 3, 7]):
            with table.lease(tokens, 0) as lease:
                decode(table, cache, lease, tokens)
        with table.lease([1, 2, 3, 4, 5, 6], 5) as lease:
            assert lease.tokens == (1, 2, 3, 4)
        assert_mirrors(table, cache)

    def test_the_reuse_limit_caps_the_cached_prefix(self):
        table, cache = make()
        with table.lease([1, 2, 3, 4], 0) as lease:
            decode(table, cache, lease, [1, 2, 3, 4])
        with table.lease([1, 2, 3, 4], 2) as lease:
            assert lease.tokens == (1, 2)  # a longer cached sequence is cut (or copied) to the limit
        assert_mirrors(table, cache)

    def test_a_leased_sequence_is_shared_not_handed_out_twice(self):
        table, cache = make()
        with table.lease([5, 6, 7], 0) as a:
            decode(table, cache, a, [5, 6, 7])
            with table.lease([5, 6, 7, 8], 3) as b:
                assert b.slot != a.slot
                assert b.tokens == (5, 6, 7) and cache.copies == 1
                decode(table, cache, b, [8])
                assert a.tokens == (5, 6, 7)
        assert_mirrors(table, cache)


class TestLeasing:
    def test_a_full_table_refuses_until_a_lease_is_released(self):
        table, cache = make(2)
        a = table.lease([1], 0)
        b = table.lease([2], 0)
        with pytest.raises(KVCacheFullError, match="in use"):
            table.lease([3], 0)
        b_slot = b.slot
        b.release()
        with table.lease([3], 0) as c:
            assert c.slot == b_slot
        a.release()

    def test_release_on_exception_frees_the_sequence_and_keeps_its_tokens(self):
        table, cache = make(1)
        with pytest.raises(RuntimeError):
            with table.lease([1, 2], 0) as lease:
                decode(table, cache, lease, [1, 2])
                raise RuntimeError("cancelled")
        with table.lease([1, 2, 3], 2) as again:
            assert again.tokens == (1, 2)

    def test_least_recently_used_idle_sequence_is_evicted(self):
        table, cache = make(3)
        for t in (10, 20, 30):
            with table.lease([t], 0) as lease:
                decode(table, cache, lease, [t, t])
        with table.lease([10, 10, 11], 2):  # 10 is now the most recently used
            pass
        with table.lease([40], 0) as lease:
            decode(table, cache, lease, [40])
        held = {table.held(s) for s in range(3)}
        assert (20, 20) not in held and (10, 10) in held and (30, 30) in held
        assert_mirrors(table, cache)

    def test_evict_idle_spares_leased_sequences(self):
        table, cache = make(2)
        with table.lease([1], 0) as kept:
            decode(table, cache, kept, [1])
            with table.lease([2], 0) as other:
                decode(table, cache, other, [2])
            assert table.evict_idle() is True
            assert table.evict_idle() is False
            assert kept.tokens == (1,)
        assert_mirrors(table, cache)

    def test_a_released_lease_cannot_be_used(self):
        table, cache = make()
        lease = table.lease([1], 0)
        slot = lease.slot
        lease.release()
        lease.release()  # idempotent
        with pytest.raises(SpecSearchError, match="after it was released"):
            lease.slot
        with pytest.raises(SpecSearchError, match="without a lease"):
            table.record(slot, [1])

    def test_clear_needs_every_lease_released(self):
        table, cache = make()
        lease = table.lease([1], 0)
        decode(table, cache, lease, [1, 2])
        with pytest.raises(SpecSearchError, match="leased"):
            table.clear()
        lease.release()
        table.clear()
        assert all(table.held(s) == () for s in range(len(table)))
        assert_mirrors(table, cache)

    def test_a_lease_holds_the_lock_against_other_threads(self):
        table, cache = make()
        got = threading.Event()

        def other_thread():
            with table.lease([2], 0):
                got.set()

        with table.lease([1], 0):
            worker = threading.Thread(target=other_thread)
            worker.start()
            assert not got.wait(0.3), "another thread leased while a lease was open"
        worker.join(5)
        assert got.is_set()


class TestForkAndTruncate:
    def test_forks_share_the_cells_and_are_released_with_their_parent(self):
        table, cache = make(4)
        with table.lease([1, 2], 0) as parent:
            decode(table, cache, parent, [1, 2])
            forks = parent.fork(3)
            assert len({parent.slot, *(f.slot for f in forks)}) == 4
            assert all(f.tokens == (1, 2) for f in forks)
            decode(table, cache, forks[0], [3])
            forks[1].truncate(1)
            assert parent.tokens == (1, 2) and forks[0].tokens == (1, 2, 3) and forks[1].tokens == (1,)
            assert_mirrors(table, cache)
        assert not any(table.is_leased(s) for s in range(4))

    def test_a_fork_that_does_not_fit_takes_nothing(self):
        table, cache = make(3)
        with table.lease([1], 0) as parent:
            decode(table, cache, parent, [1])
            with pytest.raises(KVCacheFullError, match="cannot fork 3"):
                parent.fork(3)
            assert [table.is_leased(s) for s in range(3)].count(True) == 1
            assert len(parent.fork(2)) == 2

    def test_truncate_never_grows(self):
        table, cache = make()
        with table.lease([1], 0) as lease:
            decode(table, cache, lease, [1, 2, 3])
            lease.truncate(5)
            assert lease.tokens == (1, 2, 3)
            lease.truncate(0)
            assert lease.tokens == ()
        assert_mirrors(table, cache)


@pytest.mark.parametrize("seed", range(20))
def test_random_operations_keep_every_invariant(seed):
    """Leases, decodes, forks, truncations, releases and evictions in random
    order: the table always mirrors the cache, reuse always finds the longest
    cached prefix, and no slot is ever held by two open leases."""
    rng = random.Random(seed)
    n_slots = rng.choice([2, 3, 5])
    table, cache = make(n_slots)
    open_leases = []

    def tokens(n):
        return [rng.randrange(3) for _ in range(n)]  # few symbols: many shared prefixes

    for _ in range(120):
        op = rng.random()
        if op < 0.3:
            want = tokens(rng.randrange(1, 7))
            limit = rng.randrange(len(want) + 1)
            best = max((common_prefix_len(table.held(s), want[:limit]) for s in range(n_slots)), default=0)
            try:
                lease = table.lease(want, limit)
            except KVCacheFullError:
                assert all(table.is_leased(s) for s in range(n_slots))
                continue
            assert len(lease) == best and lease.tokens == tuple(want[:best])
            open_leases.append(lease)
        elif op < 0.55 and open_leases:
            decode(table, cache, rng.choice(open_leases), tokens(rng.randrange(1, 4)))
        elif op < 0.65 and open_leases:
            parent = rng.choice(open_leases)
            try:
                open_leases += parent.fork(rng.randrange(1, 3))
            except KVCacheFullError:
                pass
        elif op < 0.75 and open_leases:
            lease = rng.choice(open_leases)
            lease.truncate(rng.randrange(len(lease) + 1))
        elif op < 0.95 and open_leases:
            rng.choice(open_leases).release()
            open_leases = [lease for lease in open_leases if _is_open(lease)]
        else:
            table.evict_idle()
        assert_mirrors(table, cache)
        slots = [lease.slot for lease in open_leases]
        assert len(slots) == len(set(slots)), "a slot is held by two leases"
        assert {s for s in range(n_slots) if table.is_leased(s)} == set(slots)
    for lease in open_leases:
        lease.release()


def _is_open(lease) -> bool:
    try:
        lease.slot
    except SpecSearchError:
        return False
    return True

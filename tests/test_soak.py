"""Soak: 100 consecutive solves through the Python API leak no memory, KV sequences or threads.

Mixed methods on tiny models, every fifth solve cancelled part-way, one in four
near the context limit.  After a warm-up (first loads, allocator pools) the
peak RSS may grow by at most 5 %.  tests/soak_real.py runs the same on a real
model pair (a benchmark, not a test).
"""

from __future__ import annotations

import gc
import resource
import threading

import pytest

from specsearch.core import Solver
from specsearch.core import events as ev
from specsearch.core import llama_adapter as lla
from specsearch.core.api import ModelSpec
from specsearch.core.config import SearchConfig
from specsearch.core.events import CancelToken

METHODS = ("specsearch", "ar", "sps", "small")
QUESTIONS = ("Tom has 3 apples and buys 4 more. How many apples does he have?",
             "What is 12 + 30?", "A train goes 60 km in 1 hour. How far does it go in 3 hours?")
SOLVES, WARM_UP = 100, 20


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def soak_config(i: int) -> SearchConfig:
    return SearchConfig(method=METHODS[i % len(METHODS)], max_depth=3 if i % 4 else 12, max_step_tokens=16,
                        children=2, beam_width=2, seed=i, temperature=0.8)


def cancel_at_step_two(token: CancelToken):
    def on_event(event: ev.SearchEvent) -> None:
        if isinstance(event, ev.StepStarted) and event.step == 2:
            token.cancel()

    return on_event


@pytest.mark.slow
def test_hundred_solves_leak_nothing(tiny):
    threads = threading.active_count()
    handles = lla.live_handles()
    # one thread: on a busy machine llama.cpp's thread sync costs more than tiny models compute
    small = ModelSpec(str(tiny["draft"]), n_ctx=512, n_threads=1)
    large = ModelSpec(str(tiny["target"]), n_ctx=512, n_threads=1)
    with Solver(small=small, large=large, prm=small, prm_kind="judge") as solver:
        cancelled = answered = 0
        for i in range(SOLVES):
            if i == WARM_UP:
                gc.collect()
                warm = peak_rss_kb()
            token = CancelToken()
            result = solver.solve(QUESTIONS[i % len(QUESTIONS)], soak_config(i),
                                  on_event=cancel_at_step_two(token) if i % 5 == 0 else None, cancel=token)
            cancelled += result.cancelled
            answered += result.best_leaf_id is not None
            assert all(e.live_sequences == 0 for e in solver._engines.values()), i
        gc.collect()
        grown = (peak_rss_kb() - warm) / warm
        print(f"soak: {SOLVES} solves, {cancelled} cancelled; peak RSS {warm} KiB after warm-up, "
              f"{peak_rss_kb()} KiB at the end ({grown:+.1%})")
        assert grown <= 0.05, f"peak RSS grew {grown:.1%} after warm-up"
        assert cancelled >= SOLVES // 5 - 1 and answered >= SOLVES - cancelled
    assert lla.live_handles() == handles
    assert threading.active_count() == threads

"""Soak benchmark on the real model pair (a script, not a test: it takes minutes).

    python tests/soak_real.py /path/to/models [--solves 30]

Runs consecutive solves through the Python API with the Qwen2.5-Coder 0.5B / 1.5B
pair in the folder (the 0.5B is the PRM too, kind auto), mixed methods, every
fifth one cancelled at its second step, and prints the RSS before and after,
the KV sequences still leased and the threads alive.  tests/test_soak.py is
the same on tiny models, as a test.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import threading
import time
from pathlib import Path

from specsearch.core import ModelSpec, Solver
from specsearch.core import events as ev
from specsearch.core import llama_adapter as lla
from specsearch.core.config import SearchConfig
from specsearch.core.events import CancelToken

SMALL = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
LARGE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
METHODS = ("specsearch", "ar", "sps", "small")
QUESTIONS = (
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "A shirt costs $20 and is 25% off. What is the sale price?",
    "A train goes 60 km in 1 hour. How far does it go in 3 hours?",
)


def rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help=f"folder holding {SMALL} and {LARGE}")
    parser.add_argument("--solves", type=int, default=30)
    parser.add_argument("--warm-up", type=int, default=4, help="solves before the baseline RSS is taken")
    parser.add_argument("--max-depth", type=int, default=8, help="steps per search (default 8)")
    parser.add_argument("--max-step-tokens", type=int, default=128, help="tokens per step (default 128)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per model (default: all cores)")
    args = parser.parse_args()
    small, large = args.folder / SMALL, args.folder / LARGE
    for path in (small, large):
        if not path.is_file():
            print(f"missing {path}", file=sys.stderr)
            return 2
    threads = threading.active_count()
    print(f"start: RSS {rss_kb()} KiB, threads {threads}, llama.cpp handles {lla.live_handles()}")
    t0 = time.perf_counter()
    spec = {role: ModelSpec(str(path), n_threads=args.threads) for role, path in (("small", small), ("large", large))}
    with Solver(small=spec["small"], large=spec["large"], prm=spec["small"]) as solver:
        warm = warm_peak = None
        for i in range(args.solves):
            if i == args.warm_up:
                gc.collect()
                warm, warm_peak = rss_kb(), peak_kb()
                print(f"after warm-up ({i} solves): RSS {warm} KiB, peak {warm_peak} KiB")
            token = CancelToken()

            def on_event(event: ev.SearchEvent, token: CancelToken = token, i: int = i) -> None:
                if i % 5 == 0 and isinstance(event, ev.StepStarted) and event.step == 2:
                    token.cancel()

            config = SearchConfig(method=METHODS[i % len(METHODS)], max_depth=args.max_depth,
                                  max_step_tokens=args.max_step_tokens, seed=i)
            s0 = time.perf_counter()
            result = solver.solve(QUESTIONS[i % len(QUESTIONS)], config, on_event=on_event, cancel=token)
            live = {role: e.live_sequences for role, e in solver._engines.items()}
            print(f"{i + 1:3d} {config.method:10s} {time.perf_counter() - s0:6.1f} s  answer={result.answer!r:12} "
                  f"cancelled={result.cancelled!s:5} RSS {rss_kb()} KiB  live sequences {live}", flush=True)
        gc.collect()
        end, end_peak = rss_kb(), peak_kb()
        live = {role: e.live_sequences for role, e in solver._engines.items()}
    print(f"end: RSS {end} KiB, peak {end_peak} KiB ({args.solves} solves, {time.perf_counter() - t0:.0f} s)")
    if warm:
        print(f"growth after warm-up: RSS {(end - warm) / warm:+.1%}, peak {(end_peak - warm_peak) / warm_peak:+.1%}")
    print(f"live sequences at the end {live}; threads {threading.active_count()} (start {threads}); "
          f"llama.cpp handles after close {lla.live_handles()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Engine benchmark: ratios measured side by side in one run.

* decode tokens/s at N = 1, 4, 8 parallel sequences, for each model;
* greedy speculative decoding (large verifies, small drafts; adaptive k)
  against large-only greedy decoding on the same prompts, alternating;
* reward-model style scoring throughput with and without prefix reuse;
* peak resident memory against model files + KV caches.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .engine import Engine, ScoreRequest
from .sampling import GREEDY, SamplingParams
from .speculative import SpeculativeDecoder

SAMPLED = SamplingParams(temperature=0.8, top_k=40, top_p=0.95)


@dataclass
class EngineBenchConfig:
    batch_sizes: Sequence[int] = (1, 4, 8)
    decode_prompts: int = 4  # prompts per batch size
    decode_tokens: int = 48
    spec_prompts: int = 20
    spec_tokens: int = 64
    score_prompts: int = 6
    score_siblings: int = 8


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_decode(engine: Engine, prompts, cfg: EngineBenchConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """tokens/s at each batch size; batch sizes take turns on every prompt so
    that a noisy machine slows them alike."""
    tokens = {n: 0 for n in cfg.batch_sizes}
    wall = {n: 0.0 for n in cfg.batch_sizes}
    in_decode = {n: 0.0 for n in cfg.batch_sizes}
    for i, p in enumerate(prompts[: cfg.decode_prompts]):
        engine.generate(p, 1, max_tokens=1)  # cache the prompt: measure decoding only
        for n in cfg.batch_sizes:
            d0 = engine.decode_seconds
            out = engine.generate(p, n, max_tokens=cfg.decode_tokens, sampling=SAMPLED,
                                  seeds=[i * 100 + j for j in range(n)], logprobs=False)
            in_decode[n] += engine.decode_seconds - d0
            tokens[n] += out.stats.generated_tokens
            wall[n] += out.stats.wall_seconds
    rates = {str(n): tokens[n] / wall[n] for n in cfg.batch_sizes}
    overhead = {str(n): 1 - in_decode[n] / wall[n] for n in cfg.batch_sizes}
    for n in cfg.batch_sizes:
        log(f"  {engine.name}: N={n} {rates[str(n)]:.1f} tok/s ({overhead[str(n)]:.1%} outside llama_decode)")
    out: dict[str, Any] = {"tok_s": rates, "python_overhead": overhead}
    for n in cfg.batch_sizes:
        if n != 1:
            out[f"batch_speedup_n{n}"] = rates[str(n)] / rates["1"]
    return out


def bench_speculative(large: Engine, small: Engine, prompts, cfg: EngineBenchConfig,
                      log: Callable[[str], None]) -> dict[str, Any]:
    spec = SpeculativeDecoder(large, small, k=4, adaptive=True)
    fixed = SpeculativeDecoder(large, small, k=4, adaptive=False)
    t_tok = t_sec = s_tok = s_sec = f_tok = f_sec = 0.0
    drafted = accepted = 0
    mismatches = 0
    for i, p in enumerate(prompts[: cfg.spec_prompts]):
        large.generate(p, 1, max_tokens=1)
        small.generate(p, 1, max_tokens=1)
        ref = large.generate(p, 1, max_tokens=cfg.spec_tokens, sampling=GREEDY)
        got = spec.generate(p, 1, max_tokens=cfg.spec_tokens, sampling=GREEDY)
        fix = fixed.generate(p, 1, max_tokens=cfg.spec_tokens, sampling=GREEDY)
        t_tok += ref.stats.generated_tokens
        t_sec += ref.stats.wall_seconds
        s_tok += got.stats.generated_tokens
        s_sec += got.stats.wall_seconds
        f_tok += fix.stats.generated_tokens
        f_sec += fix.stats.wall_seconds
        drafted += fix.stats.drafted
        accepted += fix.stats.accepted
        mismatches += ref.generations[0].tokens != got.generations[0].tokens
        log(f"  prompt {i + 1}: large {ref.stats.tokens_per_second:.1f} tok/s, "
            f"speculative adaptive {got.stats.tokens_per_second:.1f}, fixed k=4 {fix.stats.tokens_per_second:.1f}")
    target_rate, spec_rate, fixed_rate = t_tok / t_sec, s_tok / s_sec, f_tok / f_sec
    return {
        "target_tok_s": target_rate,
        "speculative_tok_s": spec_rate,
        "speculative_speedup": spec_rate / target_rate,
        "fixed_k4_tok_s": fixed_rate,
        "fixed_k4_speedup": fixed_rate / target_rate,
        "acceptance_rate": accepted / drafted if drafted else None,
        "outputs_differing_from_target": mismatches,
        "policy_alpha": spec.policy.alpha,
    }


def bench_scoring(engine: Engine, prompts, cfg: EngineBenchConfig, log: Callable[[str], None]) -> dict[str, Any]:
    requests = []
    for i, p in enumerate(prompts[: cfg.score_prompts]):
        conts = engine.generate(p, cfg.score_siblings, max_tokens=32, sampling=SAMPLED,
                                seeds=range(i * 50, i * 50 + cfg.score_siblings))
        for g in conts.generations:
            toks = list(p) + g.tokens
            requests.append([ScoreRequest(toks, [len(toks) - 1], [0, 1])])
    groups = [requests[i : i + cfg.score_siblings] for i in range(0, len(requests), cfg.score_siblings)]
    results = {}
    for reuse in (True, False):
        engine.reset_cache()
        n_tokens = 0
        t0 = time.perf_counter()
        for group in groups:
            reqs = [r[0] for r in group]
            engine.score(reqs, reuse=reuse) if reuse else [engine.score([r], reuse=False) for r in reqs]
            n_tokens += sum(len(r.tokens) for r in reqs)
        dt = time.perf_counter() - t0
        key = "with_reuse" if reuse else "without_reuse"
        results[key] = {"seconds": dt, "requests_per_s": len(requests) / dt, "input_tokens_per_s": n_tokens / dt}
        log(f"  scoring {key.replace('_', ' ')}: {len(requests) / dt:.2f} requests/s")
    results["reuse_speedup"] = results["with_reuse"]["requests_per_s"] / results["without_reuse"]["requests_per_s"]
    return results


def memory_budget_mb(engines: Sequence[Engine]) -> float:
    total = 0.0
    for e in engines:
        kv = (e.info.kv_bytes_per_token() or 0) * e.n_ctx
        total += e.info.file_size + kv
    return total / 2**20 + 512


def run_engine_bench(small: Engine, large: Engine, prompts: list[list[int]], cfg: EngineBenchConfig | None = None,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    cfg = cfg or EngineBenchConfig()
    log("decode throughput (tokens/s, all sequences together):")
    result: dict[str, Any] = {"small": bench_decode(small, prompts, cfg, log), "large": bench_decode(large, prompts, cfg, log)}
    log("greedy speculative decoding vs large alone:")
    result["large"].update(bench_speculative(large, small, prompts, cfg, log))
    log("scoring (8 siblings per prompt):")
    result["scoring"] = bench_scoring(small, prompts, cfg, log)
    result["peak_rss_mb"] = peak_rss_mb()
    result["memory_budget_mb"] = memory_budget_mb([small, large])
    result["models"] = {"small": small.info.name, "large": large.info.name,
                        "n_ctx": {"small": small.n_ctx, "large": large.n_ctx}, "threads": large.n_threads}
    return result


def format_engine_table(r: dict[str, Any]) -> str:
    s, l = r["small"], r["large"]
    lines = [
        f"{'':28}{'N=1':>9}{'N=4':>9}{'N=8':>9}",
        f"{'small decode tok/s':28}" + "".join(f"{s['tok_s'][k]:9.1f}" for k in ("1", "4", "8")),
        f"{'large decode tok/s':28}" + "".join(f"{l['tok_s'][k]:9.1f}" for k in ("1", "4", "8")),
        f"{'time outside llama_decode':28}" + "".join(f"{s['python_overhead'][k]:9.1%}" for k in ("1", "4", "8")),
        f"small batch speed-up        N=4 {s['batch_speedup_n4']:.2f}x   N=8 {s['batch_speedup_n8']:.2f}x",
        f"large batch speed-up        N=4 {l['batch_speedup_n4']:.2f}x   N=8 {l['batch_speedup_n8']:.2f}x",
        f"speculative (adaptive k)    {l['speculative_tok_s']:.1f} tok/s vs large alone {l['target_tok_s']:.1f}"
        f"  -> {l['speculative_speedup']:.2f}x",
        f"speculative (fixed k=4)     {l['fixed_k4_tok_s']:.1f} tok/s -> {l['fixed_k4_speedup']:.2f}x,"
        f" acceptance {l['acceptance_rate']:.0%}" if l["acceptance_rate"] is not None else "",
        f"scoring with prefix reuse   {r['scoring']['reuse_speedup']:.2f}x the requests/s without",
        f"peak RSS                    {r['peak_rss_mb']:.0f} MB (budget: files + KV + 512 MB = {r['memory_budget_mb']:.0f} MB)",
    ]
    return "\n".join(x for x in lines if x)

"""A drafter requantized into a type llama.cpp's CPU kernels are fast on.

On a CPU, llama.cpp repacks Q4_0, Q4_K and IQ4_NL weights into interleaved
layouts with fast matmul kernels; other types run on the plain ones.  Small
models often miss out: the offline pack's 0.5B "Q4_K_M" is mostly Q5_0 (its
896-wide rows do not fit Q4_K's 256-blocks), and requantized to Q4_0 it decodes
about 20 % faster on one thread (README "A drafter the CPU kernels are fast on").
Not every model gains (the pack's 1.5B, mostly Q4_K already, got slower), so the
CLI times both files with :func:`decode_speed` and says which is faster.
The drafter's speed is most of what Speculative Search saves, so this is what
`specsearch models requantize` is for.  llama.cpp's own quantizer does the
work; this module names, places, checks and registers the result, writing it
under a temporary name first so an interrupted or failed run leaves nothing
half-written behind.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from specsearch.core import llama_adapter as adapter
from specsearch.core.engine import Engine, LoadOptions
from specsearch.core.errors import SpecSearchError
from specsearch.core.gguf_info import read_gguf_info
from specsearch.core.prm_head import shipped_head_for
from specsearch.core.sampling import GREEDY

from . import locations, store
from .registry import ModelEntry, Registry, require_free_space, sha256_file

QUANT_TYPES = tuple(adapter.QUANT_FTYPES)
# Bits per weight of each target type (block size and scales included), to size the output.
_BITS = {"q4_0": 4.5, "iq4_nl": 4.5, "q8_0": 8.5}
_QUANT_SUFFIX = re.compile(r"[-._](?:i?q\d[\w]*|f16|bf16|f32)$", re.IGNORECASE)


@dataclass
class RequantizeResult:
    entry: ModelEntry
    source: ModelEntry | None  # None: the source was a file, not a registered model
    source_path: Path
    repackable_before: float  # share of layer weights in a type the CPU repack covers
    repackable_after: float
    head: Path | None  # the shipped learned head for the new file, if one ships
    reused: bool  # the file was made before: nothing was written


SPEED_PROMPT = "Count from 1 to 200, one number per line:\n1\n2\n3\n"
"""A prompt every model continues for a while (the speed check needs tokens, not sense)."""


def decode_speed(path: str | os.PathLike[str], n_tokens: int = 96, n_threads: int | None = None) -> float:
    """Greedy single-sequence decoding speed of a model file on this machine, in tokens/s
    (after a short warm-up, on CPU threads as the searches use them)."""
    with Engine(path, LoadOptions(n_gpu_layers=0, n_threads=n_threads)) as engine:
        prompt = engine.tokenize(SPEED_PROMPT)
        engine.generate([prompt], 1, max_tokens=4, sampling=GREEDY, seeds=[0])
        engine.reset_cache()
        stats = engine.generate([prompt], 1, max_tokens=n_tokens, sampling=GREEDY, seeds=[0]).stats
        return stats.tokens_per_second


@dataclass(frozen=True)
class SpeedCheck:
    before: float  # the source's decoding speed, tokens/s
    after: float  # the copy's

    @property
    def faster(self) -> bool:
        return self.after > self.before * 1.03  # within 3 %: the noise of one short run


def compare_speed(source: str | os.PathLike[str], copy: str | os.PathLike[str],
                  n_threads: int | None = None) -> SpeedCheck:
    """Both files' decoding speed on this machine (:func:`decode_speed`)."""
    return SpeedCheck(decode_speed(source, n_threads=n_threads), decode_speed(copy, n_threads=n_threads))


def derived_name(stem: str, qtype: str) -> str:
    """``qwen2.5-coder-0.5b-instruct-q4_k_m`` -> ``qwen2.5-coder-0.5b-instruct-q4_0``."""
    return _QUANT_SUFFIX.sub("", stem.lower()) + "-" + qtype


def _source(registry: Registry, source: str) -> tuple[Path, ModelEntry | None]:
    known = {e.name: e for e in registry.entries()}
    if source in known:
        return Path(known[source].path), known[source]
    path = Path(source).expanduser()
    if not path.is_file():
        raise SpecSearchError(f"no installed model or file called {source!r} (see `specsearch models list`)")
    return path, next((e for e in registry.entries() if Path(e.path) == path.resolve()), None)


def estimated_size(tensor_types: dict[str, tuple[int, tuple[int, ...]]], qtype: str) -> int:
    """Roughly how big the output gets (for the free-space check and the progress bar)."""
    bits = 0.0
    for name, (_, dims) in tensor_types.items():
        n = math.prod(dims)
        # llama.cpp keeps norms in f32 and the output matrix at 8 bits or more
        bits += n * (32 if len(dims) == 1 else max(8.5, _BITS[qtype]) if name == "output.weight" else _BITS[qtype])
    return int(bits / 8)


def requantize(source: str, qtype: str = "q4_0", name: str | None = None, role: str | None = None,
               n_threads: int = 0, registry: Registry | None = None,
               on_progress: Callable[[int, int], None] | None = None) -> RequantizeResult:
    """Write ``source`` (a registered model's name or a GGUF path) requantized to ``qtype``
    into the models folder and register it (with ``role``, else the source's)."""
    if qtype not in adapter.QUANT_FTYPES:
        raise SpecSearchError(f"unknown type {qtype!r}; choose from {', '.join(QUANT_TYPES)}")
    registry = registry or Registry.load()
    src_path, src_entry = _source(registry, source)
    info = read_gguf_info(src_path)  # a clear error for missing, non-GGUF or truncated files
    name = name or derived_name(src_entry.name if src_entry else src_path.stem, qtype)
    source_tag = f"requantized:{src_path.name}"
    target = locations.models_dir() / f"{name}.gguf"
    name = registry.name_for(target, name, source_tag)  # refuse a taken name up front
    before = adapter.repackable_share(info.tensor_types)
    done = next((e for e in registry.entries() if e.name == name and Path(e.path) == target.resolve()
                 and e.source == source_tag), None)
    if done is not None and target.is_file() and target.stat().st_size == done.size_bytes:
        after = adapter.repackable_share(read_gguf_info(target).tensor_types)
        return RequantizeResult(done, src_entry, src_path, before, after, shipped_head_for(target), reused=True)
    expected = estimated_size(info.tensor_types, qtype)
    require_free_space(target.parent, int(expected * 1.1), f"{name}.gguf")
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        _run_quantizer(src_path, part, adapter.QUANT_FTYPES[qtype], n_threads, expected, on_progress)
        after = adapter.repackable_share(read_gguf_info(part).tensor_types)
        digest = sha256_file(part)
        # never over another file that happens to have the name: that one keeps it
        target = store.import_path(target.name, digest, lambda existing: registry.holds(existing, digest))
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    entry = registry.register_file(target, role or (src_entry.role if src_entry else None), name, source_tag, digest)
    return RequantizeResult(entry, src_entry, src_path, before, after, shipped_head_for(target), reused=False)


def _run_quantizer(src: Path, part: Path, ftype: int, n_threads: int, expected: int,
                   on_progress: Callable[[int, int], None] | None) -> None:
    """The quantizer in a daemon thread, so Ctrl+C reaches the caller at once (the
    caller deletes the partial file; the thread dies with the process)."""
    error: list[BaseException] = []

    def work() -> None:
        try:
            adapter.quantize_model(str(src), str(part), ftype, n_threads)
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=work, name="requantize", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
        if on_progress is not None and part.exists():
            on_progress(min(part.stat().st_size, expected), expected)
    if error:
        raise error[0]
    if on_progress is not None:
        on_progress(expected, expected)

"""The one module that calls llama-cpp-python's low-level (ctypes) API.

Written against llama-cpp-python 0.3.36 (pinned in pyproject.toml): the
memory (KV sequence) API, batch layout, context parameters and sampler chain
change between releases, so nothing else in specsearch touches ``llama_cpp``.
Everything here is thin: handles, a token batch, decode, logits, KV sequence
operations, the native sampler chain, tokenizer and metadata, and what the
build can run on (system info, GPU offload, ggml's backend devices, called
through ggml's shared libraries where the bindings have no wrapper).
"""

from __future__ import annotations

import collections
import ctypes
import os
import re
import threading
from dataclasses import dataclass

import llama_cpp
import llama_cpp.llama_cpp as L
import numpy as np

from .errors import ModelLoadError

# ---------------------------------------------------------------- logging ---
# llama.cpp logs model loading to stderr; that would scribble over the TUI.
# Keep the recent lines so a failed load can say why.
_log_lines: collections.deque[str] = collections.deque(maxlen=64)
_log_lock = threading.Lock()
_echo_logs = os.environ.get("SPECSEARCH_LLAMA_LOG") == "1"


# llama.cpp says how many layers a load put on the GPU only in its log (GPU builds only).
_OFFLOAD_LINE = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_offload_report: tuple[int, int] | None = None


@L.llama_log_callback
def _log_callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _offload_report
    line = text.decode("utf-8", errors="replace")
    with _log_lock:
        _log_lines.append(line)
        found = _OFFLOAD_LINE.search(line)
        if found:
            _offload_report = (int(found.group(1)), int(found.group(2)))
    if _echo_logs:
        os.write(2, text)


_backend_ready = False
_backend_lock = threading.Lock()


def init_backend() -> None:
    """Once per process: install the quiet log callback, init the backend."""
    global _backend_ready
    with _backend_lock:
        if _backend_ready:
            return
        L.llama_log_set(_log_callback, ctypes.c_void_p(0))
        L.llama_backend_init()
        _backend_ready = True


def recent_log(n: int = 6) -> str:
    """The last llama.cpp log lines that look like errors (for messages)."""
    with _log_lock:
        lines = [ln.strip() for ln in _log_lines if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    return " | ".join((errors or lines)[-n:])


def clear_log() -> None:
    global _offload_report
    with _log_lock:
        _log_lines.clear()
        _offload_report = None


def supports_gpu_offload() -> bool:
    init_backend()
    return bool(L.llama_supports_gpu_offload())


def bindings_version() -> str:
    return llama_cpp.__version__


def system_info() -> str:
    """llama.cpp's one-line description of its build (CPU features, backends)."""
    init_backend()
    return L.llama_print_system_info().decode("utf-8", errors="replace").strip()


def reported_offload() -> tuple[int, int] | None:
    """(layers on the GPU, offloadable layers) as the last model load logged it; None
    when it did not say (CPU-only builds never do).  Loads on two threads at once
    may mix this up: it is for reports, not for decisions."""
    with _log_lock:
        return _offload_report


# ---------------------------------------------------------- ggml devices ---
# The pinned bindings do not wrap ggml's backend registry; these few calls go
# straight to the shared libraries llama-cpp-python ships.
_DEVICE_KINDS = ("CPU", "GPU", "iGPU", "accelerator", "meta")  # enum ggml_backend_dev_type


@dataclass(frozen=True)
class BackendDevice:
    name: str  # "CPU", "CUDA0", "Metal", "Vulkan0", ...
    description: str
    kind: str  # one of _DEVICE_KINDS
    memory_total: int  # bytes (0: not reported)
    memory_free: int


_ggml_cache: tuple[ctypes.CDLL, ctypes.CDLL] | None = None


def _ggml_libs() -> tuple[ctypes.CDLL, ctypes.CDLL] | None:
    """(libggml-base, libggml) with the signatures used here; None when they cannot be opened."""
    global _ggml_cache
    if _ggml_cache is None:
        base, ggml = _open_lib("ggml-base"), _open_lib("ggml")
        if base is None or ggml is None:
            return None
        p, s = ctypes.c_void_p, ctypes.c_size_t
        for lib, fn, res, args in (
            (ggml, "ggml_backend_dev_count", s, []),
            (ggml, "ggml_backend_dev_get", p, [s]),
            (ggml, "ggml_backend_dev_by_type", p, [ctypes.c_int]),
            (ggml, "ggml_backend_dev_backend_reg", p, [p]),
            (ggml, "ggml_backend_reg_get_proc_address", p, [p, ctypes.c_char_p]),
            (base, "ggml_backend_buft_name", ctypes.c_char_p, [p]),
            (base, "ggml_backend_dev_name", ctypes.c_char_p, [p]),
            (base, "ggml_backend_dev_description", ctypes.c_char_p, [p]),
            (base, "ggml_backend_dev_type", ctypes.c_int, [p]),
            (base, "ggml_backend_dev_memory", None, [p, ctypes.POINTER(s), ctypes.POINTER(s)]),
        ):
            getattr(lib, fn).restype, getattr(lib, fn).argtypes = res, args
        _ggml_cache = (base, ggml)
    return _ggml_cache


def _open_lib(name: str) -> ctypes.CDLL | None:
    """One of the shared libraries llama-cpp-python ships (Linux, macOS or Windows naming)."""
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    for file in (f"lib{name}.so", f"lib{name}.dylib", f"{name}.dll"):
        path = os.path.join(libdir, file)
        if os.path.exists(path):
            try:
                return ctypes.CDLL(path)
            except OSError:
                return None
    return None


def backend_devices() -> list[BackendDevice]:
    """The devices llama.cpp's ggml can run on, in its order ([] when the libraries cannot be read)."""
    init_backend()
    libs = _ggml_libs()
    if libs is None:
        return []
    base, ggml = libs
    devices = []
    for i in range(ggml.ggml_backend_dev_count()):
        dev = ggml.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        base.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        kind = base.ggml_backend_dev_type(dev)
        devices.append(BackendDevice(
            name=(base.ggml_backend_dev_name(dev) or b"?").decode("utf-8", errors="replace"),
            description=(base.ggml_backend_dev_description(dev) or b"").decode("utf-8", errors="replace"),
            kind=_DEVICE_KINDS[kind] if 0 <= kind < len(_DEVICE_KINDS) else f"type {kind}",
            memory_total=total.value,
            memory_free=free.value,
        ))
    return devices


# ----------------------------------------------------------------- models ---
LOAD_MODE_READ = 0  # plain reads into memory, no mmap

# Handles loaded and not yet freed: a leak check for tests and soak runs.
_live = collections.Counter({"models": 0, "contexts": 0})
_live_lock = threading.Lock()


def live_handles() -> dict[str, int]:
    """How many models and contexts this process has loaded and not freed."""
    with _live_lock:
        return dict(_live)


def _count(kind: str, delta: int) -> None:
    with _live_lock:
        _live[kind] += delta


def _extra_buffers_allowed() -> bool:
    """Whether llama.cpp may choose its extra CPU buffer types itself.

    The pinned build's AMX buffer type crashes (SIGSEGV in the first decode,
    llama.cpp issue 20824) on CPUs with AMX tiles, e.g. virtualised Sapphire
    Rapids; there the extra buffer types are switched off and only the plain
    repack (see repack_overrides) is asked for by name.
    SPECSEARCH_EXTRA_BUFFERS=1 / 0 forces the choice.
    """
    forced = os.environ.get("SPECSEARCH_EXTRA_BUFFERS")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return "amx_tile" not in f.read(1 << 16)
    except OSError:
        return True


# ggml types the CPU repack buffer handles (q4_0, q4_K, iq4_nl), with the row
# multiple its interleaved layouts need; others stay in the plain CPU buffer.
_REPACK_TYPES = {2: 8, 12: 8, 20: 8}


def _repackable(name: str, qtype: int, dims: tuple[int, ...]) -> bool:
    """A layer weight the CPU repack takes (its type, and rows in multiples of its interleave)."""
    return (name.startswith("blk.") and len(dims) == 2 and qtype in _REPACK_TYPES
            and dims[1] % _REPACK_TYPES[qtype] == 0)


class _BuftOverride(ctypes.Structure):
    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


def _cpu_repack_buffer_type() -> int | None:
    """ggml's CPU_REPACK buffer type, looked up through the backend registry."""
    libs = _ggml_libs()
    if libs is None:
        return None
    base, ggml = libs
    dev = ggml.ggml_backend_dev_by_type(0)  # GGML_BACKEND_DEVICE_TYPE_CPU
    if not dev:
        return None
    get = ggml.ggml_backend_reg_get_proc_address(ggml.ggml_backend_dev_backend_reg(dev), b"ggml_backend_dev_get_extra_bufts")
    if not get:
        return None
    bufts = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(get)(dev)
    i = 0
    while bufts and bufts[i]:
        if base.ggml_backend_buft_name(bufts[i]) == b"CPU_REPACK":
            return bufts[i]
        i += 1
    return None


def repack_overrides(tensor_types: dict[str, tuple[int, tuple[int, ...]]]) -> tuple[ctypes.Array, list[bytes]] | None:
    """Overrides placing the repackable weights in CPU_REPACK (the fast CPU matmul
    layout) when llama.cpp's own choice is off; None when there is nothing to do."""
    buft = _cpu_repack_buffer_type()
    if buft is None:
        return None
    names = [n for n, (qtype, dims) in tensor_types.items() if _repackable(n, qtype, dims)]
    if not names:
        return None
    patterns = [("^" + re.escape(n) + "$").encode() for n in names]
    table = (_BuftOverride * (len(patterns) + 1))()
    for i, pat in enumerate(patterns):
        table[i].pattern, table[i].buft = pat, buft
    table[len(patterns)].pattern, table[len(patterns)].buft = None, None
    return table, patterns  # the patterns must outlive the load


def repackable_share(tensor_types: dict[str, tuple[int, tuple[int, ...]]]) -> float:
    """The fraction of a model's layer weights (by element count) in a type the CPU
    repack covers: near 1, decoding runs on the fast interleaved kernels."""
    total = fast = 0
    for name, (qtype, dims) in tensor_types.items():
        if not name.startswith("blk.") or len(dims) != 2:
            continue
        n = dims[0] * dims[1]
        total += n
        fast += n if _repackable(name, qtype, dims) else 0
    return fast / total if total else 0.0


# llama.cpp file types `quantize_model` writes, by the name users give them.
QUANT_FTYPES = {"q4_0": L.LLAMA_FTYPE_MOSTLY_Q4_0, "iq4_nl": L.LLAMA_FTYPE_MOSTLY_IQ4_NL,
                "q8_0": L.LLAMA_FTYPE_MOSTLY_Q8_0}


def quantize_model(src: str, dst: str, ftype: int, n_threads: int = 0) -> None:
    """llama.cpp's own quantizer: write ``src`` requantized to ``ftype`` at ``dst``
    (already-quantized weights are dequantized first). Blocks until done."""
    init_backend()
    params = L.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = n_threads
    clear_log()
    if L.llama_model_quantize(os.fsencode(src), os.fsencode(dst), ctypes.byref(params)) != 0:
        raise ModelLoadError(f"llama.cpp could not requantize {src}: {recent_log() or 'no reason given'}")


def load_model(path: str, n_gpu_layers: int, vocab_only: bool = False,
               tensor_types: dict[str, tuple[int, tuple[int, ...]]] | None = None) -> L.llama_model_p:
    init_backend()
    params = L.llama_model_default_params()
    params.n_gpu_layers = n_gpu_layers
    params.vocab_only = vocab_only
    keep = None
    if not _extra_buffers_allowed():
        params.use_extra_bufts = False
        if n_gpu_layers == 0 and tensor_types and not vocab_only:
            keep = repack_overrides(tensor_types)
            if keep is not None:
                params.tensor_buft_overrides = ctypes.cast(keep[0], ctypes.c_void_p)
    if n_gpu_layers == 0:
        # On the CPU the weights are repacked for the matmul kernels; with mmap
        # the mapped originals stay resident too (measured: 2.7 GB instead of
        # 2.1 GB peak for the Qwen 0.5B + 1.5B pair), so read them instead.
        params.load_mode = LOAD_MODE_READ
    clear_log()
    model = L.llama_model_load_from_file(os.fsencode(path), params)
    del keep
    if not model:
        raise ModelLoadError(f"llama.cpp could not load {path}: {recent_log() or 'no reason given'}")
    _count("models", 1)
    return model


def free_model(model: L.llama_model_p) -> None:
    L.llama_model_free(model)
    _count("models", -1)


@dataclass(frozen=True)
class ModelFacts:
    n_vocab: int
    n_embd: int
    n_ctx_train: int
    n_layer: int
    n_params: int
    add_bos: bool
    bos: int
    eos: int
    chat_template: str | None
    description: str


def model_facts(model: L.llama_model_p) -> ModelFacts:
    vocab = L.llama_model_get_vocab(model)
    template = L.llama_model_chat_template(model, None)
    buf = ctypes.create_string_buffer(256)
    L.llama_model_desc(model, buf, len(buf))
    return ModelFacts(
        n_vocab=L.llama_vocab_n_tokens(vocab),
        n_embd=L.llama_model_n_embd(model),
        n_ctx_train=L.llama_model_n_ctx_train(model),
        n_layer=L.llama_model_n_layer(model),
        n_params=L.llama_model_n_params(model),
        add_bos=bool(L.llama_vocab_get_add_bos(vocab)),
        bos=L.llama_vocab_bos(vocab),
        eos=L.llama_vocab_eos(vocab),
        chat_template=template.decode("utf-8") if template else None,
        description=buf.value.decode("utf-8", errors="replace"),
    )


def builtin_chat(template: str | None, messages: list[dict[str, str]], add_generation_prompt: bool) -> str | None:
    """The chat rendered by llama.cpp's built-in code for ``template`` (which it recognises
    by name or by heuristics, never runs); None when it recognises no template."""
    chat = (L.llama_chat_message * max(1, len(messages)))()
    keep = []  # the encoded strings must outlive the call
    for i, m in enumerate(messages):
        role, content = m["role"].encode("utf-8"), m["content"].encode("utf-8")
        keep += [role, content]
        chat[i].role, chat[i].content = role, content
    tmpl = template.encode("utf-8") if template else None
    size = 2 * sum(len(b) for b in keep) + 256
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = L.llama_chat_apply_template(tmpl, chat, len(messages), add_generation_prompt, buf, size)
        if n < 0:
            return None
        if n <= size:
            return buf.raw[:n].decode("utf-8", errors="replace")
        size = n
    return None


# --------------------------------------------------------------- contexts ---
GGML_TYPE_F32 = 0
FLASH_ATTN_DISABLED = 0


def new_context(
    model: L.llama_model_p, *, n_ctx: int, n_batch: int, n_seq_max: int, n_threads: int, batch_invariant: bool = False
) -> L.llama_context_p:
    params = L.llama_context_default_params()
    if batch_invariant:
        # f16 KV entries and flash attention's f16 accumulation round differently
        # depending on how a sequence was split into batches; f32 KV without
        # flash attention leaves ~1e-6 differences instead of ~1e-3.
        params.type_k = params.type_v = GGML_TYPE_F32
        params.flash_attn_type = FLASH_ATTN_DISABLED
    params.n_ctx = n_ctx
    params.n_batch = n_batch
    params.n_ubatch = n_batch
    params.n_seq_max = n_seq_max
    params.n_threads = n_threads
    params.n_threads_batch = n_threads
    # One KV buffer shared by all sequences: forking a prompt into n sequences
    # (seq_cp) then shares its cells instead of copying them.
    params.kv_unified = True
    params.no_perf = True
    # Hidden states (for learned PRM heads) are read per token, never pooled;
    # embeddings stay off except for the decodes that need them (set_embeddings),
    # since with them on llama.cpp makes every token of a batch an output.
    params.pooling_type = L.LLAMA_POOLING_TYPE_NONE
    params.embeddings = False
    clear_log()
    ctx = L.llama_init_from_model(model, params)
    if not ctx:
        raise ModelLoadError(f"llama.cpp could not create a context (n_ctx={n_ctx}): {recent_log()}")
    _count("contexts", 1)
    return ctx


def free_context(ctx: L.llama_context_p) -> None:
    L.llama_free(ctx)
    _count("contexts", -1)


def context_size(ctx: L.llama_context_p) -> int:
    return L.llama_n_ctx(ctx)


def batch_size(ctx: L.llama_context_p) -> int:
    """Most tokens one decode takes: the n_batch asked for, capped by llama.cpp (at n_ctx, n_ubatch)."""
    return min(L.llama_n_batch(ctx), L.llama_n_ubatch(ctx))


class Batch:
    """A reusable llama_batch; numpy views make filling it cheap."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._batch = L.llama_batch_init(capacity, 0, 1)
        self._token = np.ctypeslib.as_array(self._batch.token, shape=(capacity,))
        self._pos = np.ctypeslib.as_array(self._batch.pos, shape=(capacity,))
        self._n_seq = np.ctypeslib.as_array(self._batch.n_seq_id, shape=(capacity,))
        self._logits = np.ctypeslib.as_array(self._batch.logits, shape=(capacity,))
        self._seq = self._batch.seq_id
        self.n = 0
        self.n_outputs = 0

    def clear(self) -> None:
        self.n = 0
        self.n_outputs = 0

    def add(self, token: int, pos: int, seq_id: int, output: bool) -> int:
        """Append one token; returns its batch index (used by the sampler)."""
        i = self.n
        self._token[i] = token
        self._pos[i] = pos
        self._n_seq[i] = 1
        self._seq[i][0] = seq_id
        self._logits[i] = 1 if output else 0
        self.n = i + 1
        self.n_outputs += 1 if output else 0
        return i

    @property
    def free(self) -> int:
        return self.capacity - self.n

    def close(self) -> None:
        if self._batch is not None:
            L.llama_batch_free(self._batch)
            self._batch = None

    def __del__(self) -> None:
        self.close()


def decode(ctx: L.llama_context_p, batch: Batch) -> int:
    """0 on success, 1 when the KV cache has no room (memory unchanged), <0 on error."""
    batch._batch.n_tokens = batch.n
    return int(L.llama_decode(ctx, batch._batch))


def output_logits(ctx: L.llama_context_p, n_outputs: int, n_vocab: int) -> np.ndarray:
    """A view of the logits of the last decode's outputs, in batch order.

    Valid until the next decode; copy rows that must outlive it.
    """
    ptr = L.llama_get_logits(ctx)
    return np.ctypeslib.as_array(ptr, shape=(n_outputs, n_vocab))


def set_embeddings(ctx: L.llama_context_p, on: bool) -> None:
    """Whether the next decodes also return each output token's final hidden state."""
    L.llama_set_embeddings(ctx, on)


def output_hidden(ctx: L.llama_context_p, batch_index: int, n_embd: int) -> np.ndarray:
    """A copy of the final (normed) hidden state of batch token ``batch_index``
    of the last decode, which must have run with embeddings on."""
    ptr = L.llama_get_embeddings_ith(ctx, batch_index)
    if not ptr:
        raise RuntimeError(f"llama.cpp returned no hidden state for batch token {batch_index}")
    return np.ctypeslib.as_array(ptr, shape=(n_embd,)).copy()


# --------------------------------------------------------- KV sequences ---
class SequenceMemory:
    """The KV sequence operations of one context (kv_slots.KVCache)."""

    def __init__(self, ctx: L.llama_context_p) -> None:
        self._ctx = ctx

    def remove(self, slot: int, start: int) -> None:
        """Drop the sequence's positions from ``start`` on."""
        L.llama_memory_seq_rm(L.llama_get_memory(self._ctx), slot, start, -1)

    def copy(self, src: int, dst: int, n: int) -> None:
        """Make dst share src's cells for positions [0, n) (n = -1: all; no recomputation)."""
        L.llama_memory_seq_cp(L.llama_get_memory(self._ctx), src, dst, 0, n)

    def clear(self) -> None:
        L.llama_memory_clear(L.llama_get_memory(self._ctx), True)


# -------------------------------------------------------------- tokenizer ---
class Vocab:
    def __init__(self, model: L.llama_model_p) -> None:
        self._vocab = L.llama_model_get_vocab(model)
        self.n_tokens = L.llama_vocab_n_tokens(self._vocab)
        self._pieces: dict[int, bytes] = {}
        self.eog = frozenset(t for t in range(self.n_tokens) if L.llama_vocab_is_eog(self._vocab, t))

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (L.llama_token * cap)()
        n = L.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (L.llama_token * cap)()
            n = L.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for (control tokens render as empty)."""
        cached = self._pieces.get(token)
        if cached is None:
            buf = ctypes.create_string_buffer(64)
            n = L.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = L.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            cached = self._pieces[token] = buf.raw[:n]
        return cached

    def text(self, token: int) -> str:
        """The token's vocabulary string (for compatibility checks)."""
        return L.llama_vocab_get_text(self._vocab, token).decode("utf-8", errors="replace")


# -------------------------------------------------------- native sampling ---
class SamplerChain:
    """llama.cpp's sampler chain: top-k -> top-p -> min-p -> temperature -> dist.

    temperature <= 0 gives the greedy sampler.  One chain per sequence makes a
    sequence's draws depend only on its own seed.
    """

    def __init__(self, temperature: float, top_k: int, top_p: float, min_p: float, seed: int) -> None:
        params = L.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = L.llama_sampler_chain_init(params)
        if temperature <= 0:
            L.llama_sampler_chain_add(self._chain, L.llama_sampler_init_greedy())
            return
        if top_k > 0:
            L.llama_sampler_chain_add(self._chain, L.llama_sampler_init_top_k(top_k))
        if top_p < 1.0:
            L.llama_sampler_chain_add(self._chain, L.llama_sampler_init_top_p(top_p, 1))
        if min_p > 0.0:
            L.llama_sampler_chain_add(self._chain, L.llama_sampler_init_min_p(min_p, 1))
        L.llama_sampler_chain_add(self._chain, L.llama_sampler_init_temp(temperature))
        L.llama_sampler_chain_add(self._chain, L.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def sample(self, ctx: L.llama_context_p, batch_index: int) -> int:
        """Sample from the logits of batch token ``batch_index`` of the last decode."""
        return int(L.llama_sampler_sample(self._chain, ctx, batch_index))

    def close(self) -> None:
        if self._chain is not None:
            L.llama_sampler_free(self._chain)
            self._chain = None

    def __del__(self) -> None:
        self.close()

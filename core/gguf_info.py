"""GGUF metadata and validation without loading weights.

``gguf.GGUFReader`` materialises every vocabulary string and merge as numpy
views, which takes ~9 s for a 150k-token vocabulary; ``specsearch info``,
``models list`` and every pre-load check need the header in milliseconds.  So
this module scans the header itself, using the ``gguf`` package's own type
tables (value types, quantisation block sizes, file types) for everything that
is not the byte layout.  Only the token strings are read (for the vocabulary
fingerprint); merges and other arrays are skipped by length.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, LlamaFileType

from .errors import CorruptModelError, ModelNotFoundError, NotGGUFError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

_SCALAR = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H", GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
# Arrays are kept (as lists) only for these keys; others are skipped by length.
_KEEP_ARRAYS = {"tokenizer.ggml.tokens"}


@dataclass
class GGUFInfo:
    path: str
    file_size: int
    name: str
    architecture: str
    parameter_count: int
    quantization: str
    vocab_size: int
    context_length: int | None
    has_chat_template: bool
    tokenizer_model: str | None
    vocab_fingerprint: str  # sha256 of the token strings: equal vocabularies, equal prints
    n_layers: int | None = None
    n_embd: int | None = None
    n_head_kv: int | None = None
    n_head: int | None = None
    special_tokens: dict[str, int] = field(default_factory=dict)
    chat_template: str | None = None
    tensor_types: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict, repr=False)
    """name -> (ggml type id, dims), for choosing which weights llama.cpp may repack."""

    def kv_bytes_per_token(self) -> int | None:
        """f16 K and V for every layer; None when the header lacks the sizes."""
        if not (self.n_layers and self.n_embd and self.n_head):
            return None
        head_dim = self.n_embd // self.n_head
        return 2 * 2 * self.n_layers * (self.n_head_kv or self.n_head) * head_dim

    def to_dict(self, with_template: bool = False) -> dict[str, Any]:
        out = asdict(self)
        out.pop("tensor_types")
        if not with_template:
            out.pop("chat_template")
        return out


class _Scanner:
    def __init__(self, fh: BinaryIO, path: str, size: int) -> None:
        self.fh, self.path, self.size = fh, path, size

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise CorruptModelError(f"{self.path}: truncated GGUF header (file ends at byte {self.size})")
        return data

    def scalar(self, vtype: GGUFValueType) -> Any:
        fmt = _SCALAR[vtype]
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        (length,) = struct.unpack("<Q", self.read(8))
        if length > self.size:
            raise CorruptModelError(f"{self.path}: corrupt GGUF header (string of {length} bytes)")
        return self.read(length).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        (length,) = struct.unpack("<Q", self.read(8))
        if self.fh.tell() + length > self.size:
            raise CorruptModelError(f"{self.path}: truncated GGUF header (string past end of file)")
        self.fh.seek(length, os.SEEK_CUR)

    def value(self, vtype: GGUFValueType, keep: bool) -> Any:
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            itype = GGUFValueType(self.scalar(GGUFValueType.UINT32))
            count = self.scalar(GGUFValueType.UINT64)
            if itype == GGUFValueType.STRING:
                if keep:
                    return [self.string() for _ in range(count)]
                for _ in range(count):
                    self.skip_string()
                return count
            if itype == GGUFValueType.ARRAY:
                raise CorruptModelError(f"{self.path}: nested arrays are not supported")
            width = struct.calcsize(_SCALAR[itype])
            if self.fh.tell() + width * count > self.size:
                raise CorruptModelError(f"{self.path}: truncated GGUF header (array past end of file)")
            if keep:
                return list(struct.unpack(f"<{count}{_SCALAR[itype][1]}", self.read(width * count)))
            self.fh.seek(width * count, os.SEEK_CUR)
            return count
        return self.scalar(vtype)


def _tensor_nbytes(qtype: int, n_elements: int, path: str) -> int:
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
    except (ValueError, KeyError) as exc:
        raise CorruptModelError(f"{path}: unknown tensor type {qtype}") from exc
    return n_elements // block * type_size


def read_gguf_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Read and check a GGUF header; raise a :mod:`errors` exception naming the cause.

    Checks: the file exists, starts with the GGUF magic, its header parses, and
    every tensor's data lies inside the file (catches truncated downloads).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelNotFoundError(f"model file not found: {p}")
    size = p.stat().st_size
    with open(p, "rb") as fh:
        magic = fh.read(4)
        if magic != GGUF_MAGIC:
            raise NotGGUFError(f"{p}: not a GGUF file (starts with {magic!r}, expected b'GGUF')")
        sc = _Scanner(fh, str(p), size)
        try:
            version = sc.scalar(GGUFValueType.UINT32)
            if version not in (2, 3):
                raise CorruptModelError(f"{p}: unsupported GGUF version {version}")
            n_tensors = sc.scalar(GGUFValueType.UINT64)
            n_kv = sc.scalar(GGUFValueType.UINT64)
            meta: dict[str, Any] = {}
            for _ in range(n_kv):
                key = sc.string()
                vtype = GGUFValueType(sc.scalar(GGUFValueType.UINT32))
                meta[key] = sc.value(vtype, keep=key in _KEEP_ARRAYS)
            tensors = []
            tensor_types: dict[str, tuple[int, tuple[int, ...]]] = {}
            for _ in range(n_tensors):
                tensor_name = sc.string()
                n_dims = sc.scalar(GGUFValueType.UINT32)
                dims = [sc.scalar(GGUFValueType.UINT64) for _ in range(n_dims)]
                qtype = sc.scalar(GGUFValueType.UINT32)
                offset = sc.scalar(GGUFValueType.UINT64)
                n_el = 1
                for d in dims:
                    n_el *= d
                tensors.append((n_el, qtype, offset))
                tensor_types[tensor_name] = (qtype, tuple(dims))
        except (struct.error, ValueError, UnicodeDecodeError) as exc:
            raise CorruptModelError(f"{p}: corrupt GGUF header ({exc})") from exc
        header_end = fh.tell()

    alignment = int(meta.get("general.alignment", DEFAULT_ALIGNMENT))
    data_start = (header_end + alignment - 1) // alignment * alignment
    data_end = data_start
    n_params = 0
    for n_el, qtype, offset in tensors:
        n_params += n_el
        data_end = max(data_end, data_start + offset + _tensor_nbytes(qtype, n_el, str(p)))
    if data_end > size:
        raise CorruptModelError(
            f"{p}: truncated GGUF file: tensor data ends at byte {data_end} but the file has {size} bytes"
        )

    arch = str(meta.get("general.architecture", "unknown"))
    tokens = meta.get("tokenizer.ggml.tokens") or []
    fingerprint = hashlib.sha256("\0".join(tokens).encode("utf-8")).hexdigest()
    file_type = meta.get("general.file_type")
    try:
        quant = LlamaFileType(file_type).name.replace("MOSTLY_", "") if file_type is not None else "unknown"
    except ValueError:
        quant = f"type {file_type}"
    specials = {
        k.split(".")[-1].removesuffix("_token_id"): int(v)
        for k, v in meta.items()
        if k.startswith("tokenizer.ggml.") and k.endswith("_token_id")
    }
    template = meta.get("tokenizer.chat_template")

    def arch_int(key: str) -> int | None:
        v = meta.get(f"{arch}.{key}")
        return int(v) if isinstance(v, (int, float)) else None

    return GGUFInfo(
        path=str(p),
        file_size=size,
        name=str(meta.get("general.name") or p.stem),
        architecture=arch,
        parameter_count=n_params,
        quantization=quant,
        vocab_size=len(tokens),
        context_length=arch_int("context_length"),
        has_chat_template=bool(template),
        tokenizer_model=meta.get("tokenizer.ggml.model"),
        vocab_fingerprint=fingerprint,
        n_layers=arch_int("block_count"),
        n_embd=arch_int("embedding_length"),
        n_head_kv=arch_int("attention.head_count_kv"),
        n_head=arch_int("attention.head_count"),
        special_tokens=specials,
        chat_template=template if isinstance(template, str) else None,
        tensor_types=tensor_types,
    )

"""Value heads of published PRMs, converted to specsearch head files.

Skywork-o1-Open-PRM and Qwen2.5-Math-PRM are causal LMs with a small head on
the final normed hidden states.  llama.cpp's converter keeps only the
language model, so the head's weights are read here from the checkpoint's
``.safetensors`` file (parsed with numpy: specsearch does not depend on torch)
and written as a :class:`~.prm_head.Head` for that backbone GGUF, which then
runs as ``--prm-kind head``.

safetensors layout: an 8-byte little-endian header length, a JSON header
mapping each tensor name to ``{dtype, shape, data_offsets}`` (offsets relative
to the end of the header), then the raw little-endian bytes.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SpecSearchError
from .gguf_info import read_gguf_info
from .prm_head import QWEN_PRM_STEP_TAG, QWEN_PRM_SYSTEM, SKYWORK_STEP_TAG, Head, HeadError, file_sha256


class WeightsError(SpecSearchError):
    """A weights file is missing, not safetensors, or lacks the head's tensors."""


# ------------------------------------------------------------- safetensors ---
_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "F64": np.dtype("<f8")}
_MAX_HEADER = 100 << 20  # the format's own limit is 100 MB
_PYTORCH_HINT = (
    "specsearch reads safetensors only (it does not depend on torch); convert the checkpoint once with: "
    "python -c \"import torch; from safetensors.torch import save_file; "
    "save_file({{k: v.float().contiguous() for k, v in torch.load('{path}', map_location='cpu').items() "
    "if k.startswith('{prefix}')}}, '{out}')\" and pass --weights {out}"
)


@dataclass
class SafetensorsFile:
    """The header of one safetensors file; tensors are read on demand."""

    path: Path
    tensors: dict[str, dict[str, Any]]
    data_start: int

    def read(self, name: str) -> np.ndarray:
        """Tensor ``name`` as float32 (BF16 widened exactly)."""
        entry = self.tensors[name]
        try:
            dtype = _DTYPES.get(str(entry["dtype"]))
            shape = [int(d) for d in entry["shape"]]
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise WeightsError(f"{self.path}: corrupt safetensors entry for tensor {name}") from None
        if dtype is None:
            raise WeightsError(f"{self.path}: tensor {name} has dtype {entry['dtype']}; "
                               f"supported: {', '.join(_DTYPES)}")
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dtype.itemsize or begin < 0:
            raise WeightsError(f"{self.path}: tensor {name} has {end - begin} bytes for shape {shape} {entry['dtype']}")
        with open(self.path, "rb") as fh:
            fh.seek(self.data_start + begin)
            raw = fh.read(end - begin)
        if len(raw) != end - begin:
            raise WeightsError(f"{self.path}: truncated file (tensor {name} runs past its end)")
        arr = np.frombuffer(raw, dtype=dtype)
        if entry["dtype"] == "BF16":  # bfloat16 is the top half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr.astype(np.float32).reshape(shape)


def _is_pytorch(first: bytes) -> bool:
    """A PyTorch checkpoint: a zip archive (torch >= 1.6) or a bare pickle (protocol 2-5)."""
    return (
        first.startswith(b"PK\x03\x04")
        or (first[:1] == b"\x80" and first[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))
    )


def open_safetensors(path: str | os.PathLike[str], prefix_hint: str = "") -> SafetensorsFile:
    """Parse a safetensors header; one-line errors for anything else (with the
    conversion command for a PyTorch checkpoint)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p}")
    size = p.stat().st_size
    with open(p, "rb") as fh:
        first = fh.read(9)
        n = struct.unpack("<Q", first[:8])[0] if len(first) == 9 else 0
        if not (2 <= n <= min(_MAX_HEADER, size - 8) and first[8:9] == b"{"):
            if _is_pytorch(first):
                out = p.parent / "prm-head.safetensors"  # the head's tensors only: a few KB to MB
                raise WeightsError(f"{p} is a PyTorch checkpoint, not safetensors; "
                                   + _PYTORCH_HINT.format(path=p, prefix=prefix_hint, out=out))
            raise WeightsError(f"{p} is not a safetensors file (it does not start with a header length "
                               "and a JSON header)")
        try:
            header = json.loads((first[8:] + fh.read(n - 1)).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise WeightsError(f"{p} is not a safetensors file (its header is not valid JSON)") from None
    if not isinstance(header, dict) or not all(isinstance(v, dict) for k, v in header.items() if k != "__metadata__"):
        raise WeightsError(f"{p} is not a safetensors file (its header is not a table of tensors)")
    header.pop("__metadata__", None)
    return SafetensorsFile(p, header, 8 + n)


def read_tensors(path: str | os.PathLike[str], names: list[str], prefix: str = "") -> dict[str, np.ndarray]:
    """Tensors by name from a ``.safetensors`` file, a sharded checkpoint's
    ``model.safetensors.index.json``, or a checkpoint folder holding either."""
    p = Path(path)
    if p.is_dir():
        for candidate in ("model.safetensors", "model.safetensors.index.json"):
            if (p / candidate).is_file():
                return read_tensors(p / candidate, names, prefix)
        bins = sorted(p.glob("*.bin"))
        if bins:
            open_safetensors(bins[0], prefix)  # raises the conversion hint
        raise WeightsError(f"{p} holds neither model.safetensors nor model.safetensors.index.json")
    if p.name.endswith(".json"):
        try:
            weight_map = json.loads(p.read_text(encoding="utf-8"))["weight_map"]
        except FileNotFoundError:
            raise WeightsError(f"weights file not found: {p}") from None
        except (OSError, ValueError, KeyError, TypeError):
            raise WeightsError(f"{p} is not a safetensors index (no weight_map)") from None
        _check_present(p, names, list(weight_map), prefix)
        shards: dict[str, SafetensorsFile] = {}
        out = {}
        for name in names:
            shard = weight_map[name]
            if shard not in shards:
                shards[shard] = open_safetensors(p.parent / shard, prefix)
            _check_present(shards[shard].path, [name], list(shards[shard].tensors), prefix)
            out[name] = shards[shard].read(name)
        return out
    st = open_safetensors(p, prefix)
    _check_present(p, names, list(st.tensors), prefix)
    return {name: st.read(name) for name in names}


def _check_present(path: Path, names: list[str], have: list[str], prefix: str) -> None:
    missing = [n for n in names if n not in have]
    if not missing:
        return
    # The same tensors under another prefix (e.g. a wrapper's "pretrained_model.") -> suggest --prefix.
    tail = missing[0][len(prefix):]
    key = ".".join(missing[0].split(".")[-2:])
    near = sorted({h[: len(h) - len(tail)] for h in have if h == key or h.endswith("." + key)} - {prefix})
    hint = f"; if the head is stored under another name, pass --prefix {near[0]}" if len(near) == 1 else ""
    shown = ", ".join(sorted(have)[:12]) + (f" … and {len(have) - 12} more" if len(have) > 12 else "")
    raise WeightsError(f"{path} lacks tensor(s) {', '.join(missing)}; it has: {shown or 'no tensors'}{hint}")


# ------------------------------------------------------------------ kinds ---
@dataclass(frozen=True)
class HeadKind:
    """How one published PRM's head is stored and how its input is laid out."""

    name: str
    description: str
    prompt_format: str
    prefix: str
    layers: tuple[tuple[str, str | int], ...]
    """(tensor stem under ``prefix``, output width: "hidden" or a number) per Linear layer, ReLU between."""
    output: str
    meta: dict[str, Any] = field(default_factory=dict)


CONVERT_KINDS: dict[str, HeadKind] = {
    k.name: k for k in (
        HeadKind(
            "skywork", "Skywork-o1-Open-PRM-Qwen-2.5-1.5B / -7B: Linear(hidden, 1) value head, sigmoid",
            prompt_format="skywork", prefix="v_head.summary.", layers=(("", 1),), output="sigmoid",
            meta={"step_separator": SKYWORK_STEP_TAG, "add_bos": True},
        ),
        HeadKind(
            "qwen-math-prm", "Qwen2.5-Math-PRM-7B / -72B: Linear(h, h), ReLU, Linear(h, 2), softmax",
            prompt_format="qwen-math-prm", prefix="score.", layers=(("0.", "hidden"), ("2.", 2)),
            output="softmax2", meta={"system_prompt": QWEN_PRM_SYSTEM, "step_separator": QWEN_PRM_STEP_TAG},
        ),
    )
}


def backbone_hidden_size(backbone: str | os.PathLike[str]) -> int:
    """The backbone's hidden size from its GGUF header (no weights loaded)."""
    info = read_gguf_info(backbone)
    if not info.n_embd:
        raise HeadError(f"{backbone}: the GGUF header has no {info.architecture}.embedding_length")
    return int(info.n_embd)


def convert_head(kind: str, weights: str | os.PathLike[str], backbone: str | os.PathLike[str],
                 prefix: str | None = None) -> Head:
    """Read a published PRM's head from ``weights`` and bind it to ``backbone`` (a GGUF)."""
    spec = CONVERT_KINDS.get(kind)
    if spec is None:
        raise HeadError(f"unknown head kind {kind!r}; known: {', '.join(CONVERT_KINDS)}")
    hidden = backbone_hidden_size(backbone)
    prefix = spec.prefix if prefix is None else prefix
    names = [f"{prefix}{stem}{part}" for stem, _ in spec.layers for part in ("weight", "bias")]
    tensors = read_tensors(weights, names, prefix)
    layers = []
    width = hidden
    for stem, out in spec.layers:
        out_width = hidden if out == "hidden" else int(out)
        w, b = tensors[f"{prefix}{stem}weight"], tensors[f"{prefix}{stem}bias"]
        for name, arr, want in ((f"{prefix}{stem}weight", w, (out_width, width)),
                                (f"{prefix}{stem}bias", b, (out_width,))):
            if arr.shape != want:
                raise WeightsError(
                    f"{name} has shape {list(arr.shape)}, expected {list(want)} for {Path(backbone).name} "
                    f"(hidden size {hidden}): the head and the backbone come from different models"
                )
        layers.append((w.T.astype(np.float64), b.astype(np.float64)))  # torch stores Linear as [out, in]
        width = out_width
    head = Head(
        backbone_sha256=file_sha256(backbone), hidden_size=hidden, prompt_format=spec.prompt_format,
        features=("hidden",), layers=layers, output=spec.output,
        meta={**spec.meta, "converted_from": Path(weights).name, "head_kind": spec.name, "tensors": names},
    )
    head.validate(f"{spec.name} head")
    return head

"""One installed model as the registry records it, and the checks of its fields.

The load settings (``n_gpu_layers``, ``n_ctx``, ``n_threads``) are range-checked
here, once: by :meth:`ModelEntry.with_settings` when the user changes them and
by :meth:`ModelEntry.from_json` when ``registry.json`` is read.  A JSON entry
whose identifying fields have the wrong type is refused (``BadEntryError``); a
setting out of range is reset to automatic and reported, so one hand-edited
number never costs a user the model.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from specsearch.core.engine import LOAD_BOUNDS
from specsearch.core.errors import SpecSearchError
from specsearch.core.methods import MODEL_ROLES

# The engine's own limits (LoadOptions): a setting the registry accepts is one a load accepts.
INT32_MAX = int(LOAD_BOUNDS["n_ctx"].high)
MAX_THREADS = int(LOAD_BOUNDS["n_threads"].high)


class BadEntryError(ValueError):
    """A registry.json entry that cannot describe a model (missing or mistyped identifying fields)."""


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_gpu_layers(value: Any) -> int | str:
    """``"auto"`` or a whole number of layers 0 … 2**31-1 (text such as ``"12"`` from the CLI is read)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if value == "auto" or (_whole(value) and 0 <= value <= INT32_MAX):
        return value
    raise SpecSearchError(f"n_gpu_layers must be 'auto' or a whole number from 0 to {INT32_MAX}, not {value!r}")


def check_n_ctx(value: Any) -> int | None:
    """None (automatic) or a context size 1 … 2**31-1 tokens."""
    if value is None or (_whole(value) and 1 <= value <= INT32_MAX):
        return value
    raise SpecSearchError(f"n_ctx must be a whole number of tokens from 1 to {INT32_MAX} "
                          f"(0 or nothing: automatic), not {value!r}")


def check_n_threads(value: Any) -> int | None:
    """None (all cores) or 1 … 512 threads."""
    if value is None or (_whole(value) and 1 <= value <= MAX_THREADS):
        return value
    raise SpecSearchError(f"n_threads must be a whole number from 1 to {MAX_THREADS} (0 or nothing: all cores), "
                          f"not {value!r}")


SETTINGS_CHECKS = {"n_gpu_layers": check_gpu_layers, "n_ctx": check_n_ctx, "n_threads": check_n_threads}
SETTINGS_DEFAULTS = {"n_gpu_layers": "auto", "n_ctx": None, "n_threads": None}
_TEXT_FIELDS = ("name", "path", "quantization", "architecture", "vocab_fingerprint", "source")
_COUNT_FIELDS = ("size_bytes", "vocab_size")


@dataclass
class ModelEntry:
    name: str
    path: str
    role: str | None
    size_bytes: int
    quantization: str
    architecture: str
    vocab_fingerprint: str
    vocab_size: int
    source: str  # hub:<repo>/<file> | import | link | offline-pack | rebuilt
    sha256: str | None = None
    n_gpu_layers: int | str = "auto"
    n_ctx: int | None = None
    n_threads: int | None = None
    added: float = field(default_factory=time.time)

    @property
    def vocab_family(self) -> str:
        return self.vocab_fingerprint[:8]

    @property
    def settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SETTINGS_CHECKS}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def check_settings(**settings: Any) -> dict[str, Any]:
        """The given load settings, each checked (SpecSearchError, one line, if out of range)."""
        return {k: SETTINGS_CHECKS[k](v) for k, v in settings.items()}

    def with_settings(self, **settings: Any) -> "ModelEntry":
        """A copy with the given load settings, checked."""
        return replace(self, **self.check_settings(**settings))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelEntry":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, name: str, data: Any) -> tuple["ModelEntry", list[str]]:
        """The entry stored under ``name`` and what had to be reset; BadEntryError if it is unusable."""
        if not isinstance(data, dict):
            raise BadEntryError(f"entry {name!r} is a {type(data).__name__}, not an object")
        data = {**data, "name": name}  # the key names the entry
        bad = [k for k in _TEXT_FIELDS if not isinstance(data.get(k), str) or not data[k]]
        bad += [k for k in _COUNT_FIELDS if not (_whole(data.get(k)) and data[k] >= 0)]
        if bad:
            raise BadEntryError(f"entry {name!r} has no usable {', '.join(bad)}")
        notes = []
        if data.get("role") is not None and data["role"] not in MODEL_ROLES:
            notes.append(f"{name}: unknown role {data['role']!r} dropped")
            data["role"] = None
        if data.get("sha256") is not None and not isinstance(data["sha256"], str):
            notes.append(f"{name}: sha256 {data['sha256']!r} dropped")
            data["sha256"] = None
        added = data.get("added")
        if added is not None and not (isinstance(added, (int, float)) and not isinstance(added, bool)
                                      and math.isfinite(added)):
            data.pop("added")
        for key, check in SETTINGS_CHECKS.items():
            try:
                data[key] = check(data.get(key, SETTINGS_DEFAULTS[key]))
            except SpecSearchError as exc:
                notes.append(f"{name}: {exc}; reset to automatic")
                data[key] = SETTINGS_DEFAULTS[key]
        return cls.from_dict(data), notes

"""The registry of local models: what is installed, its role and load settings.

Stored as ``<data dir>/registry.json``, always written atomically.  A registry
file that cannot be read is kept aside (``registry.json.corrupt-<time>``),
reported through :attr:`Registry.recovered_from`, and rebuilt from the GGUF
files in the models folder, so nothing a user downloaded is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from specsearch.core.atomic import atomic_write_json
from specsearch.core.errors import IncompatibleVocabError, SpecSearchError
from specsearch.core.gguf_info import read_gguf_info
from specsearch.core.methods import MODEL_ROLES

from . import recommended as cat
from . import locations

ROLES = MODEL_ROLES
REGISTRY_FILE = "registry.json"


class ModelNotRegisteredError(SpecSearchError):
    """No installed model has that name."""


class InsufficientDiskError(SpecSearchError):
    """Not enough free disk space for a model file (an import's copy or a download)."""


def require_free_space(folder: Path, need: int, what: str) -> None:
    """Raise InsufficientDiskError unless ``folder`` has ``need`` bytes free for ``what``."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise InsufficientDiskError(f"{folder} has {free / 2**20:.0f} MB free; "
                                    f"{need / 2**20:.0f} MB more are needed for {what}")


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelEntry":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class VerifyResult:
    name: str
    ok: bool
    problems: list[str]
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_file(path: str | Path, on_progress: Callable[[int, int], None] | None = None) -> str:
    h = hashlib.sha256()
    total = os.path.getsize(path)
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(done, total)
    return h.hexdigest()


def check_pair(small: ModelEntry, large: ModelEntry) -> None:
    """Raise IncompatibleVocabError unless ``small`` can draft for ``large``."""
    if small.vocab_fingerprint != large.vocab_fingerprint:
        raise IncompatibleVocabError(
            f"{small.name} cannot draft for {large.name}: their vocabularies differ "
            f"({small.vocab_size} tokens, family {small.vocab_family} vs {large.vocab_size} tokens, "
            f"family {large.vocab_family}); pick a small model of the same family"
        )


class Registry:
    def __init__(self, path: Path, data: dict[str, Any], recovered_from: Path | None = None) -> None:
        self.path = path
        self._models = {name: ModelEntry.from_dict(d) for name, d in data.get("models", {}).items()}
        self._defaults: dict[str, str | None] = {r: data.get("defaults", {}).get(r) for r in ROLES}
        self.recovered_from = recovered_from

    # ------------------------------------------------------------ storage ---
    @classmethod
    def load(cls, path: Path | None = None) -> "Registry":
        path = path or locations.data_dir() / REGISTRY_FILE
        if not path.exists():
            registry = cls(path, {})
            if any(locations.models_dir().glob("*.gguf")):
                registry.rebuild()  # registry lost but files present: adopt them
            return registry
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
                raise ValueError("not a registry object")
            registry = cls(path, data)
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(path, aside)
            registry = cls(path, {}, recovered_from=aside)
            registry.rebuild(reason=str(exc))
        return registry

    def save(self) -> None:
        atomic_write_json(self.path, {
            "version": 1,
            "models": {n: e.to_dict() for n, e in sorted(self._models.items())},
            "defaults": self._defaults,
        })

    def rebuild(self, reason: str = "") -> list[ModelEntry]:
        """Register every readable GGUF file in the models folder."""
        found = []
        for gguf in sorted(locations.models_dir().glob("*.gguf")):
            try:
                found.append(self._register(gguf, role=self._guess_role(gguf.name), name=None, source="rebuilt"))
            except SpecSearchError:
                continue  # truncated or not GGUF: leave it for the user to look at
        self.save()
        return found

    # ------------------------------------------------------------- access ---
    def entries(self) -> list[ModelEntry]:
        return sorted(self._models.values(), key=lambda e: (ROLES.index(e.role) if e.role in ROLES else 9, e.name))

    def get(self, name: str) -> ModelEntry:
        try:
            return self._models[name]
        except KeyError:
            known = ", ".join(sorted(self._models)) or "none installed"
            raise ModelNotRegisteredError(f"no installed model named {name!r} ({known})") from None

    def defaults(self) -> dict[str, ModelEntry | None]:
        return {r: self._models.get(n) if n else None for r, n in self._defaults.items()}

    # ----------------------------------------------------------- changes ---
    @staticmethod
    def _guess_role(filename: str) -> str | None:
        for part in cat.OFFLINE_PACK:
            if part.filename == filename:
                return part.role
        for entry in cat.CATALOG:
            if entry.filename == filename:
                return entry.role
        return None

    def _register(self, path: Path, role: str | None, name: str | None, source: str,
                  sha256: str | None = None) -> ModelEntry:
        info = read_gguf_info(path)  # raises a clear error for missing / non-GGUF / truncated files
        if role is not None and role not in ROLES:
            raise SpecSearchError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
        name = name or path.name.removesuffix(".gguf").lower()
        entry = ModelEntry(
            name=name, path=str(path.resolve()), role=role, size_bytes=info.file_size,
            quantization=info.quantization, architecture=info.architecture,
            vocab_fingerprint=info.vocab_fingerprint, vocab_size=info.vocab_size, source=source, sha256=sha256,
        )
        for other in [n for n, e in self._models.items() if n != name and Path(e.path) == Path(entry.path)]:
            del self._models[other]  # one file, one entry
        old = self._models.get(name)
        if old is not None:  # keep the user's load settings across re-imports
            entry.n_gpu_layers, entry.n_ctx, entry.n_threads = old.n_gpu_layers, old.n_ctx, old.n_threads
        self._models[name] = entry
        return entry

    def import_file(self, path: str | Path, role: str | None = None, name: str | None = None, link: bool = False,
                    source: str | None = None, sha256: str | None = None,
                    on_progress: Callable[[int, int], None] | None = None) -> ModelEntry:
        """Validate a GGUF file and register it; copied into the models folder
        (atomically) unless ``link``, which registers it where it is."""
        src = Path(path).expanduser()
        read_gguf_info(src)  # validate before copying gigabytes
        role = role or self._guess_role(src.name)
        if link:
            target = src
        else:
            target = locations.models_dir() / src.name
            if target.resolve() != src.resolve():
                require_free_space(target.parent, src.stat().st_size, f"a copy of {src.name}")
                part = target.with_name(target.name + ".part")
                try:
                    shutil.copyfile(src, part)
                    os.replace(part, target)
                finally:
                    part.unlink(missing_ok=True)
        digest = sha256 or sha256_file(target, on_progress)
        entry = self._register(target, role, name, source or ("link" if link else "import"), digest)
        self.save()
        return entry

    def remove(self, name: str, delete_file: bool = True) -> ModelEntry:
        entry = self.get(name)
        del self._models[name]
        for role, default in self._defaults.items():
            if default == name:
                self._defaults[role] = None
        self.save()
        path = Path(entry.path)
        # Only files the manager owns are deleted; a linked file is the user's.
        if delete_file and entry.source != "link" and path.parent.resolve() == locations.models_dir().resolve():
            path.unlink(missing_ok=True)
        return entry

    def verify(self, name: str) -> VerifyResult:
        entry = self.get(name)
        problems = []
        path = Path(entry.path)
        digest = None
        if not path.is_file():
            problems.append(f"file missing: {path}")
        else:
            try:
                read_gguf_info(path)
            except SpecSearchError as exc:
                problems.append(str(exc))
            if path.stat().st_size != entry.size_bytes:
                problems.append(f"size changed: {path.stat().st_size} bytes, registered {entry.size_bytes}")
            digest = sha256_file(path)
            if entry.sha256 and digest != entry.sha256:
                problems.append(f"SHA-256 mismatch: {digest[:16]}…, registered {entry.sha256[:16]}…")
        return VerifyResult(name, not problems, problems, digest)

    def set_default(self, role: str, name: str | None) -> None:
        if role not in ROLES:
            raise SpecSearchError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
        if name is not None:
            entry = self.get(name)
            other = {"small": "large", "large": "small"}.get(role)
            partner = self._models.get(self._defaults.get(other) or "") if other else None
            if partner is not None:
                small, large = (entry, partner) if role == "small" else (partner, entry)
                check_pair(small, large)
        self._defaults[role] = name
        self.save()

    def update_settings(self, name: str, *, n_gpu_layers: int | str | None = None, n_ctx: int | None = None,
                        n_threads: int | None = None) -> ModelEntry:
        entry = self.get(name)
        if n_gpu_layers is not None:
            if n_gpu_layers != "auto" and not (isinstance(n_gpu_layers, int) and n_gpu_layers >= 0):
                raise SpecSearchError("n_gpu_layers must be 'auto' or a whole number >= 0")
            entry.n_gpu_layers = n_gpu_layers
        if n_ctx is not None:
            entry.n_ctx = n_ctx or None
        if n_threads is not None:
            entry.n_threads = n_threads or None
        self.save()
        return entry

    def compatible_drafts(self, large_name: str) -> list[ModelEntry]:
        large = self.get(large_name)
        return [e for e in self.entries()
                if e.name != large.name and e.vocab_fingerprint == large.vocab_fingerprint and e.size_bytes < large.size_bytes]

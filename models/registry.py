"""The registry of local models: what is installed, its role and load settings.

Stored as ``<data dir>/registry.json``, always written atomically, and changed
only under its lock (reload → change → save, see ``registry_file``): a
``Registry`` object loaded earlier (by a pull before its download, by the app's
model screen) applies its change to what is on disk *now*, so overlapping
writers never revert each other.  A registry file that cannot be read is kept
aside (``registry.json.corrupt-<time>``) and rebuilt from the GGUF files in the
models folder; one with entries or defaults of the wrong shape is kept aside
(``registry.json.bad-<time>``) and loaded without them.  Either way
:attr:`Registry.recovered_from` and :attr:`Registry.recovery_note` say so, and
nothing a user downloaded is lost.

A registry name stands for one file.  Re-registering the same file (same path,
or the same Hub repo file) keeps the user's load settings; another file never
takes over an existing name: a derived name gets a distinct spelling
(``store`` says where files go), an explicit one that is taken is refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from specsearch.core.atomic import atomic_write_json
from specsearch.core.errors import IncompatibleVocabError, SpecSearchError
from specsearch.core.gguf_info import read_gguf_info
from specsearch.core.methods import MODEL_ROLES

from . import recommended as cat
from . import locations, registry_file, store
from .entry import ModelEntry

ROLES = MODEL_ROLES
REGISTRY_FILE = "registry.json"


class ModelNotRegisteredError(SpecSearchError):
    """No installed model has that name."""


class NameTakenError(SpecSearchError):
    """The name asked for already stands for another model file."""


class InsufficientDiskError(SpecSearchError):
    """Not enough free disk space for a model file (an import's copy or a download)."""


def require_free_space(folder: Path, need: int, what: str) -> None:
    """Raise InsufficientDiskError unless ``folder`` has ``need`` bytes free for ``what``."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise InsufficientDiskError(f"{folder} has {free / 2**20:.0f} MB free; "
                                    f"{need / 2**20:.0f} MB more are needed for {what}")


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


def _copy_hashing(src: Path, folder: Path, on_progress: Callable[[int, int], None] | None) -> tuple[Path, str]:
    """Copy ``src`` to a fresh ``.part`` file in ``folder``; (that file, the SHA-256 of the bytes copied)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{src.name}.", suffix=".part")
    h = hashlib.sha256()
    total, done = src.stat().st_size, 0
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
            while chunk := fh.read(1 << 22):
                out.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if on_progress:
                    on_progress(done, total)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), h.hexdigest()


def check_pair(small: ModelEntry, large: ModelEntry) -> None:
    """Raise IncompatibleVocabError unless ``small`` can draft for ``large``."""
    if small.vocab_fingerprint != large.vocab_fingerprint:
        raise IncompatibleVocabError(
            f"{small.name} cannot draft for {large.name}: their vocabularies differ "
            f"({small.vocab_size} tokens, family {small.vocab_family} vs {large.vocab_size} tokens, "
            f"family {large.vocab_family}); pick a small model of the same family"
        )


class Registry:
    def __init__(self, path: Path, contents: registry_file.RegistryContents | None = None,
                 recovered_from: Path | None = None) -> None:
        self.path = path
        self.recovered_from = recovered_from
        self.problems: list[str] = []  # what a recovery left out or reset, or why the file was unreadable
        self._was_unreadable = False
        self._use(contents or registry_file.RegistryContents())

    def _use(self, contents: registry_file.RegistryContents) -> None:
        self._models: dict[str, ModelEntry] = dict(contents.models)
        self._defaults: dict[str, str | None] = {r: contents.defaults.get(r) for r in ROLES}

    # ------------------------------------------------------------ storage ---
    @classmethod
    def load(cls, path: Path | None = None) -> "Registry":
        path = path or locations.data_dir() / REGISTRY_FILE
        contents = registry_file.read(path)
        if not contents.needs_repair and (contents.exists or not store.model_files()):
            return cls(path, contents)
        registry = cls(path)  # to repair, or to adopt the files of a lost registry: a change, so locked
        with registry_file.locked(path):
            registry._reload_locked()
        return registry

    @property
    def recovery_note(self) -> str | None:
        """One line for the user when loading had to set the file aside, else None."""
        if self.recovered_from is None:
            return None
        what = "was unreadable" if self._was_unreadable else "had parts of the wrong shape"
        return (f"the model registry {what} ({'; '.join(self.problems)}); kept it as {self.recovered_from} "
                f"and rebuilt it from what was usable and the GGUF files in {locations.models_dir()}")

    def _reload_locked(self) -> None:
        """Read the file again (lock held); repair it and adopt stray model files when needed."""
        contents = registry_file.read(self.path)
        self._use(contents)
        if contents.needs_repair:
            self.recovered_from = registry_file.set_aside(self.path, "corrupt" if contents.unreadable else "bad")
            self.problems = [contents.unreadable] if contents.unreadable else list(contents.problems)
            self._was_unreadable = contents.unreadable is not None
        if contents.needs_repair or not contents.exists:
            if self._adopt_files() or contents.needs_repair:
                self.save()

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Lock, reload what is on disk now, let the caller change it, save."""
        with registry_file.locked(self.path):
            self._reload_locked()
            yield
            self.save()

    def save(self) -> None:
        atomic_write_json(self.path, {
            "version": 1,
            "models": {n: e.to_dict() for n, e in sorted(self._models.items())},
            "defaults": self._defaults,
        })

    def rebuild(self) -> list[ModelEntry]:
        """Register every readable GGUF file in the models folder that is not registered yet."""
        with self._changing():
            return self._adopt_files()

    def _adopt_files(self) -> list[ModelEntry]:
        known = {Path(e.path) for e in self._models.values()}
        found = []
        for gguf in store.model_files():
            if gguf.resolve() in known:
                continue
            try:
                found.append(self._register(gguf, role=self._guess_role(gguf.name), name=None, source="rebuilt",
                                            alternatives=store.fallback_names(gguf)))
            except SpecSearchError:
                continue  # truncated or not GGUF: leave it for the user to look at
        return found

    # ------------------------------------------------------------- access ---
    def entries(self) -> list[ModelEntry]:
        return sorted(self._models.values(), key=lambda e: (ROLES.index(e.role) if e.role in ROLES else 9, e.name))

    def _require_known(self, name: str) -> None:
        """ModelNotRegisteredError, before any lock is taken, for a name neither this object nor the
        file knows: a mistyped name changes nothing in the data folder (not even a lock file)."""
        if name not in self._models and name not in registry_file.read(self.path).models:
            self.get(name)

    def get(self, name: str) -> ModelEntry:
        try:
            return self._models[name]
        except KeyError:
            known = ", ".join(sorted(self._models)) or "none installed"
            raise ModelNotRegisteredError(f"no installed model named {name!r} ({known})") from None

    def defaults(self) -> dict[str, ModelEntry | None]:
        return {r: self._models.get(n) if n else None for r, n in self._defaults.items()}

    # ------------------------------------------------------------- names ---
    @staticmethod
    def _guess_role(filename: str) -> str | None:
        for part in cat.OFFLINE_PACK:
            if part.filename == filename:
                return part.role
        for entry in cat.CATALOG:
            if entry.filename == filename:
                return entry.role
        return None

    @staticmethod
    def _same_model(entry: ModelEntry, path: Path, source: str) -> bool:
        """The same file, or the same Hub repo file (stored elsewhere by an older version)."""
        return Path(entry.path) == path.resolve() or (source.startswith("hub:") and entry.source == source)

    def name_for(self, path: Path, name: str | None, source: str, alternatives: tuple[str, ...] = ()) -> str:
        """The registry name for the file at ``path``: ``name`` unless another model has it (NameTakenError);
        without one, the file's stem, else the first free of ``alternatives``, else ``<stem>-2``, …"""
        if name is not None:
            other = self._models.get(name)
            if other is not None and not self._same_model(other, path, source):
                raise NameTakenError(f"the name {name!r} already stands for another model ({other.path}); "
                                     "choose another name, or remove that model first")
            return name
        stem = path.name.removesuffix(".gguf").lower()
        for candidate in (stem, *alternatives, *(f"{stem}-{n}" for n in range(2, 10_000))):
            other = self._models.get(candidate)
            if other is None or self._same_model(other, path, source):
                return candidate
        raise NameTakenError(f"no free name for {path}")

    # ----------------------------------------------------------- changes ---
    def _register(self, path: Path, role: str | None, name: str | None, source: str,
                  sha256: str | None = None, alternatives: tuple[str, ...] = ()) -> ModelEntry:
        info = read_gguf_info(path)  # raises a clear error for missing / non-GGUF / truncated files
        if role is not None and role not in ROLES:
            raise SpecSearchError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
        name = self.name_for(path, name, source, alternatives)
        entry = ModelEntry(
            name=name, path=str(path.resolve()), role=role, size_bytes=info.file_size,
            quantization=info.quantization, architecture=info.architecture,
            vocab_fingerprint=info.vocab_fingerprint, vocab_size=info.vocab_size, source=source, sha256=sha256,
        )
        for other in [n for n, e in self._models.items() if n != name and Path(e.path) == Path(entry.path)]:
            del self._models[other]  # one file, one entry
        old = self._models.get(name)
        if old is not None:  # the same model again: keep the user's load settings
            entry = entry.with_settings(**old.settings)
        self._models[name] = entry
        if old is not None and old.path != entry.path:  # a Hub file pulled again into its per-repo folder
            self._delete_if_unused(old)
        return entry

    def _delete_if_unused(self, entry: ModelEntry) -> None:
        """Delete ``entry``'s file if the manager owns it and no entry uses it (lock held)."""
        path = Path(entry.path)
        # Only files the manager owns are deleted; a linked file is the user's.
        if entry.source == "link" or not store.is_owned(path):
            return
        if any(Path(e.path) == path for e in self._models.values()):
            return
        path.unlink(missing_ok=True)
        store.prune_empty_folders(path)

    def register_file(self, path: Path, role: str | None, name: str | None, source: str,
                      sha256: str | None = None, alternatives: tuple[str, ...] = ()) -> ModelEntry:
        """Register a file already in its place (a download, the offline pack) under the lock."""
        with self._changing():
            return self._register(path, role, name, source, sha256, alternatives)

    def import_file(self, path: str | Path, role: str | None = None, name: str | None = None, link: bool = False,
                    source: str | None = None, sha256: str | None = None,
                    on_progress: Callable[[int, int], None] | None = None) -> ModelEntry:
        """Validate a GGUF file and register it; copied into the models folder (``store`` says
        where: never over a different file) unless ``link``, which registers it where it is."""
        src = Path(path).expanduser()
        read_gguf_info(src)  # validate before copying gigabytes
        role = role or self._guess_role(src.name)
        source = source or ("link" if link else "import")
        if link or store.is_owned(src):
            digest = sha256 or sha256_file(src, on_progress)
            return self.register_file(src, role, name, source, digest)
        models = locations.models_dir()
        require_free_space(models, src.stat().st_size, f"a copy of {src.name}")
        part, digest = _copy_hashing(src, models, on_progress)  # outside the lock: it can take minutes
        try:
            with self._changing():
                target = store.import_path(src.name, digest, lambda existing: self.holds(existing, digest))
                name = self.name_for(target, name, source)  # refuse before moving anything into place
                os.replace(part, target)
                return self._register(target, role, name, source, digest)
        finally:
            part.unlink(missing_ok=True)

    def holds(self, path: Path, digest: str) -> bool:
        """Whether the file at ``path`` has SHA-256 ``digest`` (the registry's record first, else hashed)."""
        known = next((e for e in self._models.values() if Path(e.path) == path.resolve() and e.sha256), None)
        if known is not None and known.size_bytes == path.stat().st_size:
            return known.sha256 == digest
        return sha256_file(path) == digest

    def remove(self, name: str, delete_file: bool = True) -> ModelEntry:
        self._require_known(name)
        with registry_file.locked(self.path):
            self._reload_locked()
            entry = self.get(name)
            del self._models[name]
            for role, default in self._defaults.items():
                if default == name:
                    self._defaults[role] = None
            self.save()
            if delete_file:
                self._delete_if_unused(entry)
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
            self._require_known(name)
        with self._changing():
            if name is not None:
                entry = self.get(name)
                other = {"small": "large", "large": "small"}.get(role)
                partner = self._models.get(self._defaults.get(other) or "") if other else None
                if partner is not None:
                    small, large = (entry, partner) if role == "small" else (partner, entry)
                    check_pair(small, large)
            self._defaults[role] = name

    def set_defaults(self, chosen: dict[str, str]) -> None:
        """Several defaults at once (role -> model name): the large one first, so that a new
        pair is checked against each other, not against the old partner."""
        for role in sorted(chosen, key=lambda r: r != "large"):
            self.set_default(role, chosen[role])

    def update_settings(self, name: str, *, n_gpu_layers: int | str | None = None, n_ctx: int | None = None,
                        n_threads: int | None = None) -> ModelEntry:
        """Change a model's load settings (None: leave as is; n_ctx or n_threads 0: automatic)."""
        given: dict[str, Any] = {}
        if n_gpu_layers is not None:
            given["n_gpu_layers"] = n_gpu_layers
        if n_ctx is not None:
            given["n_ctx"] = None if _is_zero(n_ctx) else n_ctx
        if n_threads is not None:
            given["n_threads"] = None if _is_zero(n_threads) else n_threads
        checked = ModelEntry.check_settings(**given)  # before the lock: a bad value changes no file
        self._require_known(name)
        with self._changing():
            entry = self._models[name] = self.get(name).with_settings(**checked)
        return entry

    def compatible_drafts(self, large_name: str) -> list[ModelEntry]:
        large = self.get(large_name)
        return [e for e in self.entries()
                if e.name != large.name and e.vocab_fingerprint == large.vocab_fingerprint and e.size_bytes < large.size_bytes]


def _is_zero(value: Any) -> bool:
    return type(value) is int and value == 0

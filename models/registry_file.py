"""``registry.json`` on disk: its lock, reading it without trusting its shape, setting a bad one aside.

Every change to the registry holds :func:`locked` (a ``filelock`` lock file next
to the registry) around reload → change → save, so two writers (a pull in one
terminal, ``models rm`` or the app's model screen in another) never revert each
other.  Reads need no lock: the file is only ever replaced atomically.

:func:`read` returns what is usable: unparsable JSON, or JSON that is not a
registry object, is ``unreadable``; entries or defaults of the wrong shape are
left out and listed in ``problems``.  Either way the caller sets the file aside
(:func:`set_aside`) before writing the repaired registry, so nothing is lost.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from specsearch.core.errors import SpecSearchError
from specsearch.core.methods import MODEL_ROLES

from .entry import BadEntryError, ModelEntry

LOCK_TIMEOUT = 120.0  # a change holds the lock for milliseconds; this long means a stuck process


class RegistryBusyError(SpecSearchError):
    """Another process held the registry lock for too long."""


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the registry's lock (across processes and threads; not re-entrant)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT)
    try:
        lock.acquire()
    except Timeout:
        raise RegistryBusyError(f"the model registry {path} stayed locked for {LOCK_TIMEOUT:.0f} s "
                                f"(another specsearch writing it?); try again") from None
    try:
        yield
    finally:
        lock.release()


@dataclass
class RegistryContents:
    models: dict[str, ModelEntry] = field(default_factory=dict)
    defaults: dict[str, str | None] = field(default_factory=lambda: {r: None for r in MODEL_ROLES})
    exists: bool = False
    unreadable: str | None = None  # why the whole file could not be used
    problems: list[str] = field(default_factory=list)  # parts left out or reset

    @property
    def needs_repair(self) -> bool:
        return self.unreadable is not None or bool(self.problems)


def read(path: Path) -> RegistryContents:
    if not path.exists():
        return RegistryContents()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return RegistryContents(exists=True, unreadable=f"not JSON: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
        return RegistryContents(exists=True, unreadable="not a registry object")
    out = RegistryContents(exists=True)
    for name, raw in data.get("models", {}).items():
        try:
            entry, notes = ModelEntry.from_json(name, raw)
        except BadEntryError as exc:
            out.problems.append(f"{exc}; left out")
            continue
        out.models[name] = entry
        out.problems += notes
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        out.problems.append(f"defaults is a {type(defaults).__name__}, not an object; left out")
        defaults = {}
    for role in MODEL_ROLES:
        value = defaults.get(role)
        if value is not None and not isinstance(value, str):
            out.problems.append(f"default {role} {value!r} is not a model name; left out")
            value = None
        out.defaults[role] = value
    return out


def set_aside(path: Path, label: str) -> Path:
    """Rename ``path`` to ``<name>.<label>-<time>`` (never over an earlier one) and return the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.{label}-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.{label}-{stamp}-{n}")
    os.replace(path, aside)
    return aside

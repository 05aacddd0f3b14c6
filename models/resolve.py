"""Which GGUF file and load settings each role (small, large, prm) uses.

Shared by the CLI and the app so both read a choice the same way: a GGUF path
a model-manager name, an http(s) URL of a served model (core.remote_client) or the
name of one the model manager remembers (models/served.py); nothing means the model manager's default for the
role; no reward model means the small (else large) model judges steps.  The
model manager's per-model load settings fill whatever the caller leaves unset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specsearch.core.api import ModelSpec
from specsearch.core.errors import SpecSearchError
from specsearch.core.methods import missing_roles
from specsearch.core.remote_client import ServedModel, is_url

from .registry import ROLES, ModelEntry, Registry


@dataclass(frozen=True)
class LoadOverrides:
    """Load settings the user gave for this run; None leaves it to the model manager, then automatic."""

    n_gpu_layers: int | None = None
    n_ctx: int | None = None
    n_threads: int | None = None


@dataclass
class ResolvedModels:
    """What a search would load: a ModelSpec per role, and what is missing."""

    specs: dict[str, ModelSpec | ServedModel | None]
    sources: dict[str, str]  # role -> "given" | "served" | "model manager: NAME" | "default: NAME" | "small model as judge"
    problems: list[str]  # one line each: a path that does not exist, a name not in the registry

    def missing_for(self, method: str) -> list[str]:
        """Roles the method needs (core.methods) that have no model."""
        return missing_roles(method, [role for role, spec in self.specs.items() if spec is not None])

    def key(self) -> tuple:
        return tuple(self.specs.get(r) for r in ROLES)


def registry_entries() -> tuple[list[ModelEntry], dict[str, ModelEntry]]:
    """(entries, defaults by role) from the model manager's registry; empty when it cannot be read."""
    try:
        registry = Registry.load()
    except (OSError, SpecSearchError):  # the model manager reports why; here: no defaults
        return [], {}
    return registry.entries(), {r: e for r, e in registry.defaults().items() if e is not None}


def resolve_models(
    choices: Mapping[str, str | None],
    overrides: Mapping[str, LoadOverrides] | None = None,
    entries: list[ModelEntry] | None = None,
    defaults: dict[str, ModelEntry] | None = None,
) -> ResolvedModels:
    """ModelSpecs for ``choices`` (role -> path, model-manager name or None)."""
    if entries is None or defaults is None:
        entries, defaults = registry_entries()
    by_name = {e.name: e for e in entries}
    by_path = {str(Path(e.path)): e for e in entries}
    overrides = overrides or {}
    specs: dict[str, ModelSpec | ServedModel | None] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    for role in ROLES:
        value = choices.get(role)
        entry: ModelEntry | None = None
        if value in by_name:
            entry, sources[role] = by_name[value], f"model manager: {value}"
        elif is_url(value) or (value and value in _served_models()):
            served = _served_models()[value] if not is_url(value) else ServedModel(value)
            n_ctx = overrides.get(role, LoadOverrides()).n_ctx
            specs[role] = dataclasses.replace(served, n_ctx=n_ctx) if n_ctx is not None else served
            sources[role] = "served" if is_url(value) else f"served model: {value}"
            continue
        elif value:
            path = Path(value).expanduser()
            if not path.is_file():
                problems.append(f"{role} model {value!r} is neither a file nor a model-manager name.")
                specs[role] = None
                continue
            entry, sources[role] = by_path.get(str(path)), "given"
        elif role in defaults:
            entry = defaults[role]
            sources[role] = f"default: {entry.name}"
        else:
            specs[role] = None
            continue
        specs[role] = _spec(str(path) if entry is None else entry.path, entry, overrides.get(role, LoadOverrides()))
    if specs["prm"] is None and (specs["small"] or specs["large"]):
        specs["prm"] = specs["small"] or specs["large"]
        sources["prm"] = "small model as judge" if specs["small"] else "large model as judge"
    return ResolvedModels(specs, sources, problems)


def _served_models() -> dict[str, ServedModel]:
    """The model manager's served models by name (models/served.py); none when unreadable."""
    from .served import load_served

    try:
        return load_served()
    except SpecSearchError:
        return {}


def _spec(path: str, entry: ModelEntry | None, given: LoadOverrides) -> ModelSpec:
    n_gpu, n_ctx, threads = given.n_gpu_layers, given.n_ctx, given.n_threads
    if entry is not None:  # the model manager's per-model load settings fill the gaps
        n_gpu = n_gpu if n_gpu is not None else _int_or_none(entry.n_gpu_layers)
        n_ctx = n_ctx if n_ctx is not None else entry.n_ctx
        threads = threads if threads is not None else entry.n_threads
    return ModelSpec(path, n_gpu_layers=n_gpu, n_ctx=n_ctx, n_threads=threads)


def _int_or_none(value: Any) -> int | None:
    """The registry's n_gpu_layers is a number or "auto" (None here: the core decides)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None

"""Served models by name: an OpenAI-compatible completions server the model
manager remembers, usable as ``--large NAME`` / ``--prm NAME`` like a local model.

Stored as ``<data dir>/served.json`` ({name: ServedModel fields}), written
atomically.  An entry holds the base URL, the ``model`` field to send, the name
of the environment variable with the API key (never the key), the timeout, and
the GGUF to tokenize with.  Kept apart from the registry of local files
(registry.py), whose entries are files with hashes and vocabulary fingerprints.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from specsearch.core.atomic import atomic_write_json
from specsearch.core.errors import SpecSearchError
from specsearch.core.remote_client import ServedModel

from . import locations

SERVED_FILE = "served.json"
_FIELDS = {f.name for f in dataclasses.fields(ServedModel)}


def served_path() -> Path:
    return locations.data_dir() / SERVED_FILE


def load_served(path: Path | None = None) -> dict[str, ServedModel]:
    """The served models by name; an unreadable file is an error naming it."""
    path = path or served_path()
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(name): ServedModel(**{k: v for k, v in fields.items() if k in _FIELDS})
                for name, fields in raw.items()}
    except (ValueError, TypeError, AttributeError, SpecSearchError) as e:
        raise SpecSearchError(f"{path} is not a served-models file ({e}); fix or delete it") from None


def add_served(name: str, served: ServedModel, path: Path | None = None) -> None:
    """Remember ``served`` as ``name`` (replacing a served model of that name)."""
    if not name or "/" in name or name.startswith(("http://", "https://")):
        raise SpecSearchError(f"served model name {name!r}: use a short name without '/'")
    if served.tokenizer is not None and not Path(served.tokenizer).is_file():
        raise SpecSearchError(f"tokenizer {served.tokenizer!r} is not a file")
    entries = load_served(path)
    entries[name] = served
    _save(entries, path)


def remove_served(name: str, path: Path | None = None) -> None:
    entries = load_served(path)
    if name not in entries:
        raise SpecSearchError(f"no served model is called {name!r}")
    del entries[name]
    _save(entries, path)


def _save(entries: dict[str, ServedModel], path: Path | None) -> None:
    atomic_write_json(path or served_path(), {n: _stored(s) for n, s in sorted(entries.items())})


def _stored(served: ServedModel) -> dict[str, Any]:
    return {k: v for k, v in served.to_dict().items() if v is not None}

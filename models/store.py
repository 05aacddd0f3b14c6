"""Where model files live in the models folder, so that no model overwrites another's.

* A Hub download is stored per repo: ``<models>/<owner>--<repo>/<path in the repo>``.
  Two repos that publish the same file name get two files (and two registry
  entries); a file in a repo sub-folder (``sub/model.gguf``) keeps its folder.
* An import is copied to ``<models>/<file name>``; when a *different* file
  (another SHA-256) already has that name, the copy is stored as
  ``<stem>-<sha256[:12]>.gguf`` instead.  An identical file is reused.
* The offline pack writes its own fixed names at the top level.

Names of repos and files come from the user, the catalog, or whatever a Hub
mirror (``HF_ENDPOINT``) serves, so they are checked before they become paths:
no ``..``, no absolute names, no backslashes or drive letters.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Callable

from specsearch.core.errors import SpecSearchError

from . import locations

DOWNLOADS = ".downloads"  # partial Hub downloads (see download.py); never model files
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class UnsafeNameError(SpecSearchError):
    """A repo id or file name that would leave its folder or is not portable."""


def check_repo_file(repo_id: str, filename: str) -> None:
    """Raise UnsafeNameError unless ``repo_id`` is owner/name and ``filename`` a relative POSIX path inside it."""
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_REPO_PART.fullmatch(p) and ".." not in p for p in parts):
        raise UnsafeNameError(f"{repo_id!r} is not a Hub repo id (OWNER/NAME: letters, digits, '.', '-', '_')")
    why = _unsafe_reason(filename)
    if why:
        raise UnsafeNameError(f"refusing the file name {filename!r} from {repo_id}: {why}")


def _unsafe_reason(filename: str) -> str | None:
    if not filename or "\x00" in filename:
        return "it is empty or holds a NUL character"
    if "\\" in filename:
        return "it holds a backslash"
    if filename.startswith("/") or re.match(r"[A-Za-z]:", filename):
        return "it is an absolute path"
    if any(p in ("", ".", "..") for p in filename.split("/")):
        return "it holds an empty, '.' or '..' path component"
    return None


def repo_folder(repo_id: str) -> str:
    """The folder name for a repo: ``owner--name`` (one path component)."""
    return repo_id.replace("/", "--")


def hub_path(repo_id: str, filename: str) -> Path:
    """Where a Hub file is stored (UnsafeNameError for names that would leave their folder)."""
    check_repo_file(repo_id, filename)
    models = locations.models_dir()
    path = models.joinpath(repo_folder(repo_id), *PurePosixPath(filename).parts)
    if not is_owned(path):  # defence in depth: the checks above already rule this out
        raise UnsafeNameError(f"{repo_id}/{filename} would be stored outside {models}")
    return path


def import_path(name: str, sha256: str, same_content: Callable[[Path], bool]) -> Path:
    """Where an imported file called ``name`` with ``sha256`` goes: its own name unless that
    holds a different file (``same_content(existing)`` is False), then ``<stem>-<sha[:12]>.gguf``."""
    models = locations.models_dir()
    plain = models / Path(name).name
    if not plain.exists() or same_content(plain):
        return plain
    return models / f"{plain.stem}-{sha256[:12]}{plain.suffix}"


def is_owned(path: Path) -> bool:
    """Whether ``path`` is inside the models folder (the manager's to delete)."""
    return path.resolve().is_relative_to(locations.models_dir().resolve())


def fallback_names(path: Path) -> tuple[str, ...]:
    """The registry name a stored file takes when its stem is taken: ``owner--repo--stem``
    for a file in a repo folder (also one in a sub-folder of it), none for a top-level file.
    A download and a registry rebuild both name files by it, so a rebuild keeps the names."""
    models = locations.models_dir()
    try:
        parts = path.relative_to(models).parts
    except ValueError:  # outside the models folder (a file registered where it lies)
        return ()
    return (f"{parts[0]}--{path.stem}".lower(),) if len(parts) > 1 else ()


def model_files() -> list[Path]:
    """Every GGUF file in the models folder and its per-repo folders (not partial downloads)."""
    models = locations.models_dir()
    return sorted(p for p in models.rglob("*.gguf") if p.is_file() and DOWNLOADS not in p.relative_to(models).parts)


def prune_empty_folders(path: Path) -> None:
    """Remove ``path``'s now-empty parent folders up to (not including) the models folder."""
    models = locations.models_dir().resolve()
    folder = path.resolve().parent
    while folder != models and folder.is_relative_to(models):
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): stop
            return
        folder = folder.parent

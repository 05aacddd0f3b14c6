"""Hub downloads through huggingface_hub, with progress, resume and checksums.

huggingface_hub does the HTTP: ``get_hf_file_metadata`` for size, SHA-256
(LFS etag) and the download location, ``http_get`` for the ranged GET with
its own retries.  ``hf_hub_download`` itself is not used: since 2.x it
deletes a partial file when a download fails, and the manager promises that
an interrupted pull resumes.  So the partial file is ours
(``models/.downloads/<owner>--<repo>/<file>.<etag>.incomplete``, held by the
pull while it writes it: see ``partials``) and ``http_get`` continues it with
a ``Range`` request.  Added here: a check of the repo and file names before
any request (``store``), a free-disk check (the registry's) before starting,
progress through a callback (never a tqdm bar writing to the terminal, which
would garble the TUI), cancellation, SHA-256 verification against the
catalog or the Hub, and registration of verified files only — in the repo's
own folder (``models/<owner>--<repo>/<file>``), so two repos publishing the
same file name never overwrite each other.

The Hugging Face token goes to the endpoint only: when the Hub answers with
a location on another host (a CDN, or wherever a mirror points), the GET
there carries no ``Authorization``, as huggingface_hub does itself.
"""

from __future__ import annotations

import io
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import build_hf_headers
from tqdm.std import tqdm

from specsearch.core.errors import SpecSearchError

from . import recommended as cat
from . import locations, partials, store
from .registry import ModelEntry, Registry, require_free_space, sha256_file

Progress = Callable[[int, int], None]


class DownloadError(SpecSearchError):
    """A download could not start or finish."""


class ChecksumMismatchError(DownloadError):
    """The downloaded file's SHA-256 is not the expected one (the file is deleted)."""


class DownloadCancelled(DownloadError):
    """Cancelled by the user; the partial file is kept for resuming."""


def _progress_class(on_progress: Progress | None, cancel: threading.Event | None) -> type[tqdm]:
    """A tqdm that reports to a callback instead of drawing (safe in worker threads)."""

    class CallbackProgress(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = io.StringIO()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            out = super().update(n)
            if on_progress is not None:
                on_progress(int(self.n), int(self.total or 0))
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled("download cancelled; run the same pull again to resume")
            return out

    return CallbackProgress


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _endpoint() -> str | None:
    # huggingface_hub reads HF_ENDPOINT once at import; read it per call instead.
    return os.environ.get("HF_ENDPOINT") or None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def headers_for(asked: str, location: str) -> dict[str, str]:
    """huggingface_hub's headers for a GET of ``location`` (where ``asked`` was redirected);
    without Authorization unless ``location`` is on the same scheme, host and port."""
    headers = build_hf_headers()
    if _origin(location) != _origin(asked):
        for key in [k for k in headers if k.lower() == "authorization"]:
            del headers[key]
    return headers


class NotGGUFDownloadError(DownloadError):
    """The catalog entry (or the file asked for) is not a GGUF file llama.cpp could load."""


def _refuse_non_gguf(entry: cat.CatalogEntry | None, repo_id: str, filename: str) -> None:
    """Stop before any request: upstream weights must be converted, not pulled into the models folder."""
    if entry is not None and not entry.is_gguf:
        what = "the upstream weights of a value-head PRM" if entry.prm_kind == "head" else "upstream weights"
        steps = ("convert the checkpoint to GGUF with llama.cpp's convert_hf_to_gguf.py, write its value head "
                 "with `specsearch prm convert-head`, then use --prm-kind head --head HEAD.npz"
                 if entry.prm_kind == "head" else
                 "convert the checkpoint to GGUF with llama.cpp's convert_hf_to_gguf.py, then "
                 "`specsearch models import FILE.gguf`")
        raise NotGGUFDownloadError(f"{entry.name} is not a GGUF file ({repo_id}/{filename} holds {what}) and "
                                   f"cannot be pulled as is: {steps}")
    if entry is None and not filename.lower().endswith(".gguf"):
        raise NotGGUFDownloadError(f"{repo_id}/{filename} is not a .gguf file; llama.cpp loads only GGUF: "
                                   "pick the repo's .gguf file, or convert the model with llama.cpp's "
                                   "convert_hf_to_gguf.py and `specsearch models import FILE.gguf`")


def resolve(spec_or_repo: str, filename: str | None) -> tuple[str, str, str | None, str | None, str | None]:
    """(repo_id, filename, expected sha256, role, name or None) for a catalog name or REPO FILE;
    NotGGUFDownloadError for anything that is not a GGUF file, UnsafeNameError for names that
    would leave the models folder."""
    if filename is None:
        entry = cat.find(spec_or_repo)
        if entry is None:
            raise DownloadError(f"{spec_or_repo!r} is not in the catalog (see `specsearch models catalog`); "
                                "or give a Hub repo and file: `specsearch models pull REPO FILE`")
        _refuse_non_gguf(entry, entry.repo_id, entry.filename)
        return entry.repo_id, entry.filename, entry.sha256, entry.role, entry.name
    store.check_repo_file(spec_or_repo, filename)
    entry = cat.find(f"{spec_or_repo}/{filename}")
    _refuse_non_gguf(entry, spec_or_repo, filename)
    name = entry.name if entry else None  # None: the registry names it after the file
    return spec_or_repo, filename, entry.sha256 if entry else None, entry.role if entry else None, name


def pull(
    spec_or_repo: str,
    filename: str | None = None,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
    role: str | None = None,
    registry: Registry | None = None,
) -> ModelEntry:
    """Download a model from the Hub (resuming a partial download), verify it, register it."""
    repo_id, filename, expected, cat_role, name = resolve(spec_or_repo, filename)
    final = store.hub_path(repo_id, filename)
    source = f"hub:{repo_id}/{filename}"
    # Any Registry object will do: every change reloads the file under its lock.
    registry = registry or Registry.load()
    registry.name_for(final, name, source)  # a taken name is refused before gigabytes are fetched
    if _offline():
        raise DownloadError(f"HF_HUB_OFFLINE is set: cannot download {repo_id}/{filename}; "
                            "use `specsearch models pack` or `specsearch models import FILE.gguf`")
    endpoint = _endpoint()
    models = locations.models_dir()
    staging = partials.downloads_dir() / store.repo_folder(repo_id)
    url = hf_hub_url(repo_id, filename, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, endpoint=endpoint)
    except (HfHubHTTPError, OSError) as exc:
        raise DownloadError(f"cannot reach the Hub for {repo_id}/{filename}: {exc}") from exc
    hub_sha = meta.etag if meta.etag and re.fullmatch(r"[0-9a-f]{64}", meta.etag) else None
    expected = expected or hub_sha
    size = meta.size or 0
    partial = sum(p.stat().st_size for p in staging.glob("*" + partials.SUFFIX)) if staging.exists() else 0
    if size:
        require_free_space(models, size - partial, filename)
    staging.mkdir(parents=True, exist_ok=True)
    # The etag comes from the server: only its letters and digits go into a file name.
    tag = re.sub(r"[^0-9A-Za-z]", "", meta.etag or "")[:16] or "unknown"
    path = staging / f"{filename.replace('/', '--')}.{tag}{partials.SUFFIX}"
    with partials.held(path):
        resume = path.stat().st_size
        if size and resume > size:
            path.unlink()
            resume = 0
        if not size or resume < size:
            _fetch(meta.location, url, path, resume, size, f"{repo_id}/{filename}", on_progress, cancel)
        elif on_progress:
            on_progress(size, size)
        digest = sha256_file(path)
        if expected and digest != expected:
            path.unlink(missing_ok=True)
            raise ChecksumMismatchError(f"{filename}: SHA-256 {digest[:16]}… does not match the expected "
                                        f"{expected[:16]}…; the file was deleted and nothing was registered")
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, final)
    return registry.register_file(final, role=role or cat_role, name=name, source=source, sha256=digest,
                                  alternatives=store.fallback_names(final))


def _fetch(location: str, asked: str, path: Path, resume: int, size: int, what: str,
           on_progress: Progress | None, cancel: threading.Event | None) -> None:
    """Append the rest of the file at ``location`` to ``path`` (``resume`` bytes are there)."""
    try:
        with open(path, "ab") as fh:
            http_get(location, fh, resume_size=resume, headers=headers_for(asked, location),
                     expected_size=size or None, displayed_filename=what,
                     tqdm_class=_progress_class(on_progress, cancel))
    except DownloadCancelled:
        raise
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as exc:
        raise DownloadError(f"download of {what} stopped: {exc}; run the same pull again to resume") from exc

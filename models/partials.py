"""Partial Hub downloads (``<models>/.downloads/<owner>--<repo>/<file>.<etag>.incomplete``):
held while a pull writes them, cleaned when stale.

A pull holds an exclusive ``flock`` on its partial file from before the first
byte until the finished file is moved into place (:func:`held`).  So "stale"
needs no age or PID guess: a partial that nobody holds belongs to no running
download (its pull failed, was cancelled or killed) and :func:`clean` may
delete it — at the price of that download starting over; one that is held is
skipped.  The same lock stops two pulls of one file from writing one partial.
Where ``fcntl`` does not exist (Windows) nothing is held; there a file open
for writing cannot be deleted, which protects the transfer itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from specsearch.core.errors import SpecSearchError

from . import locations, store

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".incomplete"


class PartialBusyError(SpecSearchError):
    """Another process is downloading the same file."""


def downloads_dir() -> Path:
    return locations.models_dir() / store.DOWNLOADS


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold the partial file ``path`` (created if missing) for one pull; PartialBusyError if another holds it."""
    if fcntl is None:
        yield
        return
    for _ in range(3):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise PartialBusyError(f"another specsearch is downloading {path.name} right now; "
                                   "wait for it, or stop it first")
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # `models clean` deleted the file between our open and our lock: open the new one
    else:
        raise PartialBusyError(f"{path} keeps disappearing (is `specsearch models clean` running in a loop?)")
    try:
        yield
    finally:
        os.close(fd)


@dataclass
class CleanReport:
    removed: list[tuple[Path, int]] = field(default_factory=list)  # (partial file, bytes)
    in_use: list[Path] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(size for _, size in self.removed)


def clean(dry_run: bool = False) -> CleanReport:
    """Delete (or, with ``dry_run``, list) every partial download no running pull holds."""
    report = CleanReport()
    root = downloads_dir()
    if not root.is_dir():
        return report
    for path in sorted(root.rglob("*" + SUFFIX)):
        try:
            if _remove_if_unheld(path, dry_run, report) and not dry_run:
                store.prune_empty_folders(path)
        except FileNotFoundError:
            continue  # finished (moved into place) while we looked
    return report


def _remove_if_unheld(path: Path, dry_run: bool, report: CleanReport) -> bool:
    size = path.stat().st_size
    if fcntl is None:
        if not dry_run:
            try:
                path.unlink()
            except PermissionError:  # open in a running pull
                report.in_use.append(path)
                return False
        report.removed.append((path, size))
        return True
    fd = os.open(path, os.O_RDONLY)
    try:
        if not _try_lock(fd):
            report.in_use.append(path)
            return False
        if not dry_run:
            path.unlink()  # while holding the lock: a pull that opened it before now gets a fresh file
        report.removed.append((path, size))
        return True
    finally:
        os.close(fd)

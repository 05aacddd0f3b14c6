"""What the screens use from the app, as one typed object handed to each screen.

:class:`AppServices` holds the settings, the solver pool, the run registry,
the history store and its writer, the measured ``ar`` baselines and the
question history; screens are given it when they are made instead of
reaching into the App.  :class:`HistoryWriter` saves conversations in
worker threads, so no history disk I/O runs on the UI thread.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from textual.dom import DOMNode

from .history import Conversation, HistoryStore
from .messages import HistoryWritten
from .runs import RunRegistry
from .search_worker import SolverPool
from .settings import Settings, SettingsStore


class HistoryWriter:
    """Saves conversations off the UI thread.  The conversation is serialised on the caller's
    (UI) thread, so the worker never reads an object the UI is changing; writes go one at a
    time, and an older snapshot never overwrites a newer one.  A failure is posted to
    ``owner`` as :class:`HistoryWritten` with its error."""

    def __init__(self, store: HistoryStore, owner: DOMNode) -> None:
        self.store = store
        self.owner = owner
        self._order = itertools.count()
        self._written: dict[str, int] = {}
        self._pending = 0
        self._lock = threading.Lock()  # one write at a time
        self._count_lock = threading.Lock()

    def save(self, conv: Conversation) -> None:
        conv.updated_at = time.time()
        conv_id, data, order = conv.id, conv.to_dict(), next(self._order)
        with self._count_lock:
            self._pending += 1
        self.owner.run_worker(lambda: self._write(conv_id, data, order), name=f"save {conv_id}",
                              group="history-write", thread=True)

    def _write(self, conv_id: str, data: dict[str, Any], order: int) -> None:
        try:
            with self._lock:
                if order > self._written.get(conv_id, -1):
                    self.store.write(conv_id, data)
                    self._written[conv_id] = order
        except OSError as exc:
            self.owner.post_message(HistoryWritten("save", error=f"Could not save history: {exc}"))
        finally:
            with self._count_lock:
                self._pending -= 1

    @property
    def idle(self) -> bool:
        """Every save asked for is on disk (or failed)."""
        with self._count_lock:
            return self._pending == 0


@dataclass
class AppServices:
    settings_store: SettingsStore
    history: HistoryStore
    writer: HistoryWriter
    pool: SolverPool
    runs: RunRegistry = field(default_factory=RunRegistry)
    baselines: dict[str, float] = field(default_factory=dict)  # question -> wall seconds of an `ar` run on it
    question_history: list[str] = field(default_factory=list)  # oldest first, for the question boxes

    @property
    def settings(self) -> Settings:
        return self.settings_store.effective

    def save_conversation(self, conv: Conversation) -> None:
        self.writer.save(conv)

    def baseline_for(self, question: str) -> float | None:
        return self.baselines.get(question.strip())

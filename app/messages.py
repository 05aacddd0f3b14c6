"""Typed messages from worker threads to the UI thread.

Workers never touch widgets: they ``post_message`` one of these, and the
screen's ``@on`` handlers update widgets on the UI thread.  Search events are
delivered in batches (:class:`SearchEvents`) at most ~15 times a second.
Every search message carries the ``run_id`` of the search it belongs to, so
late messages from a cancelled or replaced run are recognised and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from specsearch.core.events import SearchEvent
from specsearch.core.tree import SearchResult


# ------------------------------------------------------------------ search ---
@dataclass
class SearchStatus(Message):
    """A one-line status of a run: "loading models…", "searching…"."""

    run_id: int
    text: str


@dataclass
class SearchEvents(Message):
    """A batch of core events, in emission order (the last batch ends with SearchFinished)."""

    run_id: int
    events: tuple[SearchEvent, ...]


@dataclass
class SearchCompleted(Message):
    """The search returned (also after cancellation: ``result.cancelled``)."""

    run_id: int
    result: SearchResult


@dataclass
class SearchFailed(Message):
    """The search raised; ``error`` is one line for the user."""

    run_id: int
    error: str


# ---------------------------------------------------------------- tutoring ---
@dataclass
class HintReady(Message):
    run_id: int
    text: str


@dataclass
class StepJudged(Message):
    run_id: int
    step: str
    score: float


@dataclass
class ReferenceReady(Message):
    """The model's own answer to a tutoring question (when no reference answer is known)."""

    run_id: int
    answer: str | None


@dataclass
class TutorFailed(Message):
    run_id: int
    error: str


# ------------------------------------------------------------ model manager ---
@dataclass
class TransferProgress(Message):
    """Bytes done of a pull (download), import (hashing) or offline-pack assembly."""

    what: str
    done: int
    total: int | None


@dataclass
class TransferFinished(Message):
    what: str
    error: str | None = None
    entries: tuple[Any, ...] = ()  # the registered ModelEntry objects

"""Typed messages from worker threads to the UI thread.

Workers never touch widgets: they ``post_message`` one of these, and the
``@on`` handlers update widgets on the UI thread.  Search events are
delivered in batches (:class:`SearchEvents`) at most ~15 times a second.
Every run message carries the ``run_id`` of the run it belongs to (see
app/runs.py), and every run ends with exactly one :class:`RunEnded`
message: a search with :class:`SearchCompleted` (also when cancelled:
``result.cancelled``, the tree so far is its payload) or :class:`SearchFailed`,
a tutoring job with its answer or :class:`TutorFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from specsearch.core.events import SearchEvent
from specsearch.core.tree import SearchResult


# -------------------------------------------------------------------- runs ---
@dataclass
class RunEnded(Message):
    """Base of the one terminal message of a run (app/runs.py)."""

    run_id: int


# ------------------------------------------------------------------ search ---
@dataclass
class SearchStatus(Message):
    """A one-line status of a run: "loading models…", "searching…"."""

    run_id: int
    text: str


@dataclass
class ModelsLoaded(Message):
    """A run's models are loaded: where each one's layers are (role -> "CPU · 0/25 layers on GPU"),
    and ``warning`` when GPU layers were asked of a build without GPU offload (once per loaded
    set of models).  Screens show the layers; it bubbles to the app, which shows the warning."""

    run_id: int
    offload: dict[str, str]
    warning: str | None = None


@dataclass
class SearchEvents(Message):
    """A batch of core events, in emission order.  The core's SearchFinished is not among
    them: the result reaches the screen once, in :class:`SearchCompleted`."""

    run_id: int
    events: tuple[SearchEvent, ...]


@dataclass
class SearchCompleted(RunEnded):
    """The search returned (also after cancellation: ``result.cancelled``)."""

    result: SearchResult


@dataclass
class SearchFailed(RunEnded):
    """The search (or loading its models) raised; ``error`` is one line for the user."""

    error: str


# ---------------------------------------------------------------- tutoring ---
@dataclass
class HintReady(RunEnded):
    text: str


@dataclass
class StepJudged(RunEnded):
    step: str
    score: float


@dataclass
class ReferenceReady(RunEnded):
    """The model's own answer to a tutoring question (when no reference answer is known)."""

    answer: str | None


@dataclass
class TutorFailed(RunEnded):
    error: str


# ----------------------------------------------------------------- history ---
@dataclass
class HistoryListed(Message):
    """The saved conversations, newest first (read in a worker)."""

    summaries: tuple[Any, ...]  # history.Summary


@dataclass
class FilesSetAside(Message):
    """Files that were not what they should be were moved aside (app/json_files.py); one
    notice per file.  Bubbles to the app, which shows them."""

    notices: tuple[str, ...]


@dataclass
class ConversationLoaded(Message):
    """A saved conversation read back (``error``: why it could not be)."""

    conv_id: str
    conversation: Any = None  # history.Conversation
    error: str | None = None


@dataclass
class OpenConversation(Message):
    """Show ``conversation`` in the chat (posted by the history screen, handled by the app)."""

    conversation: Any  # history.Conversation


@dataclass
class HistoryWritten(Message):
    """A conversation save, a deletion or an export finished (``error``: it failed)."""

    what: str
    path: Any = None  # pathlib.Path of an export
    error: str | None = None


# ------------------------------------------------------------ model manager ---
@dataclass
class RegistryRead(Message):
    """The model registry as read in a worker (``error``: it could not be)."""

    registry: Any = None  # models.Registry
    entries: tuple[Any, ...] = ()
    defaults: dict[str, Any] | None = None  # role -> ModelEntry
    error: str | None = None
    offload: dict[str, str] | None = None  # name -> where its layers are (as loaded, else as planned)
    served: dict[str, Any] | None = None  # name -> core.remote_client.ServedModel (models/served.py)


@dataclass
class RegistryChanged(Message):
    """A default set or a model removed (``error``: refused, and why); ``note`` says what was done."""

    title: str
    note: str = ""
    error: str | None = None

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
    note: str = ""  # what else the user should know (e.g. a requantized copy's measured speed)

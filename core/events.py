"""Typed search events, and the token that cancels a search.

A search delivers its events to one callback, the ``on_event`` of
``run_search`` / ``Solver.solve``: that is the only route.  The CLI prints them,
``--json`` serialises them one per line, the TUI batches them into Textual
messages.  Events are immutable and are emitted on the thread that runs the
search; a callback that touches a UI must hop to its own thread (the TUI does
so with ``post_message``).  :class:`SearchFinished` is always the last event.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tree import SearchResult, SearchStats, ThoughtNode


@dataclass(frozen=True)
class SearchEvent:
    """Base class; ``kind`` is the class name, used in JSON lines."""

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
        return out


@dataclass(frozen=True)
class SearchStarted(SearchEvent):
    question: str
    method: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Notice(SearchEvent):
    """Something the user should know about this run, said once (e.g. token-level
    drafting is off because the large model is served remotely)."""

    message: str


@dataclass(frozen=True)
class StepStarted(SearchEvent):
    step: int  # 1-based depth of the thoughts generated in this step
    beam_ids: tuple[int, ...]  # parent node ids being expanded (empty tuple: the root)
    beta: float | None  # threshold in force for this step (None: no rejection test)


@dataclass(frozen=True)
class ThoughtDrafted(SearchEvent):
    """A new thought exists (a small-model draft, or a large-model thought for the
    baselines and for the first SpecSearch step)."""

    node: "ThoughtNode"


@dataclass(frozen=True)
class ThoughtScored(SearchEvent):
    node_id: int
    score: float
    flag: str | None = None  # why a check overrode the score ("20 − 12 = 8, not 9")


@dataclass(frozen=True)
class ThoughtAccepted(SearchEvent):
    node_id: int
    score: float
    beta: float


@dataclass(frozen=True)
class ThoughtRejected(SearchEvent):
    node_id: int
    score: float
    beta: float


@dataclass(frozen=True)
class ThoughtRegenerated(SearchEvent):
    """The large model produced ``node`` in place of the rejected draft ``replaces``."""

    node: "ThoughtNode"
    replaces: int


@dataclass(frozen=True)
class BeamsSelected(SearchEvent):
    step: int
    selected_ids: tuple[int, ...]  # nodes kept in the beam (expanded next step)
    finished_ids: tuple[int, ...]  # nodes that completed a solution this step


@dataclass(frozen=True)
class ValuesBackedUp(SearchEvent):
    """MCTS: the visits and mean values of the nodes an iteration changed (its path and new children)."""

    step: int  # the step (depth) the search is choosing a thought for
    visits: dict[int, int]
    values: dict[int, float]


@dataclass(frozen=True)
class MethodSwitched(SearchEvent):
    """Method auto changed the generator of its steps from this step on (core.auto_method)."""

    step: int
    from_method: str  # specsearch | ar
    to_method: str
    reason: str  # "acceptance 12 %: drafting costs more than it saves (...)"
    predicted_speedup: float | None  # specsearch over ar, predicted for this step
    acceptance: float  # estimated draft acceptance rate (posterior mean)
    acceptance_low: float  # its Wilson 95 % interval
    acceptance_high: float

    def record(self) -> dict[str, Any]:
        """The switch as SearchStats.switches keeps it: the fields, without the event kind."""
        return {k: v for k, v in self.to_dict().items() if k != "event"}


@dataclass(frozen=True)
class DraftsTried(SearchEvent):
    """auto, in ar mode: this step's drafts are judged only to measure acceptance (a trial);
    the large model writes the thoughts the beam keeps."""

    step: int


@dataclass(frozen=True)
class StatsUpdated(SearchEvent):
    stats: "SearchStats"


@dataclass(frozen=True)
class SearchFinished(SearchEvent):
    """Always the last event, also after cancellation (``result.cancelled``)."""

    result: "SearchResult"


class CancelToken:
    """Set from any thread; the search checks it at least once per step and then returns
    what it has (``SearchResult.cancelled``): cancelling is not an error."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

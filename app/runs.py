"""One run controller for chat, race and tutor.

A *run* is one job on the models (a search, an ``ar`` baseline, one leg of a
race, a tutoring hint or judgement), done by a Textual thread worker.
:class:`Run` is its handle: the worker, the id its messages carry, and the
cancellation the core checks (``Run.cancel``: Esc; also set when Textual
cancels the worker as the screen goes away or the app quits), which stops a
search after its current step.  Runs are independent: a baseline and a main
search are two handles, and cancelling one never touches the other.

Every run ends with exactly one :class:`~.messages.RunEnded` message; the
screen hands it to :meth:`RunController.end`, which returns the run it ends
(or None: a run the screen abandoned, whose late answer is to be ignored).
"""

from __future__ import annotations

import itertools
import threading
from typing import Callable

from textual.dom import DOMNode
from textual.worker import Worker

from specsearch.core.events import CancelToken

from .messages import RunEnded


class RunCancelToken(CancelToken):
    """The core's cancellation check for one run: set by :meth:`Run.cancel`, or when Textual
    cancels the run's worker (the screen going away, the app quitting)."""

    def __init__(self, run: "Run") -> None:
        super().__init__()
        self._run = run

    @property
    def cancelled(self) -> bool:
        worker = self._run.worker
        return super().cancelled or (worker is not None and worker.is_cancelled)


class Run:
    """Handle of one run: ``id`` (carried by its messages), ``purpose`` (what the screen started
    it for: "search", "baseline", "hint", …), its Textual ``worker`` and the core's ``token``."""

    def __init__(self, run_id: int, purpose: str) -> None:
        self.id = run_id
        self.purpose = purpose
        self.worker: Worker | None = None
        self.token: CancelToken = RunCancelToken(self)

    def cancel(self) -> None:
        """Ask the run to stop; it still ends with its one terminal message (a search returns
        the tree so far).  The Textual worker itself is not cancelled: a worker cancelled
        before its thread starts would never run, and the run would never end."""
        CancelToken.cancel(self.token)

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def __repr__(self) -> str:
        return f"Run({self.id}, {self.purpose!r}{', cancelled' if self.cancelled else ''})"


class RunRegistry:
    """The app's runs: unique ids, and every run not ended yet (cancelled all at once on quit)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._live: dict[int, Run] = {}
        self._lock = threading.Lock()

    def new(self, purpose: str) -> Run:
        with self._lock:
            run = Run(next(self._ids), purpose)
            self._live[run.id] = run
            return run

    def forget(self, run: Run) -> None:
        with self._lock:
            self._live.pop(run.id, None)

    def live(self) -> list[Run]:
        with self._lock:
            return list(self._live.values())

    def cancel_all(self) -> None:
        for run in self.live():
            run.cancel()


class RunController:
    """The runs of one screen.  ``start`` makes a run and its thread worker; ``end`` takes a
    run's terminal message back; ``abandon`` cancels a run and ignores whatever it still says."""

    def __init__(self, owner: DOMNode, registry: RunRegistry) -> None:
        self.owner = owner
        self.registry = registry
        self._runs: dict[int, Run] = {}

    def start(self, purpose: str, work: Callable[[Run], object]) -> Run:
        """Run ``work(run)`` in a thread worker of the owner; it must post one RunEnded message."""
        run = self.registry.new(purpose)
        self._runs[run.id] = run
        # the worker exists before its thread starts (that waits for the event loop), so the
        # token can always read it
        run.worker = self.owner.run_worker(lambda: work(run), name=f"{purpose} #{run.id}", group=f"run-{run.id}",
                                           thread=True)
        return run

    def get(self, purpose: str) -> Run | None:
        """The running run started for ``purpose`` (the latest, if several)."""
        found = [r for r in self._runs.values() if r.purpose == purpose]
        return found[-1] if found else None

    def of(self, message: RunEnded | object) -> Run | None:
        """The running run a message (with a ``run_id``) belongs to; None for an ended or abandoned one."""
        return self._runs.get(getattr(message, "run_id", -1))

    @property
    def busy(self) -> bool:
        return bool(self._runs)

    def end(self, message: RunEnded) -> Run | None:
        """The run ``message`` ends, now no longer running; None if it was abandoned (ignore the message)."""
        run = self._runs.pop(message.run_id, None)
        if run is not None:
            self.registry.forget(run)
        return run

    def cancel(self, purpose: str | None = None) -> list[Run]:
        """Cancel the running runs (of ``purpose``); they end as usual, with what they have."""
        runs = [r for r in self._runs.values() if purpose is None or r.purpose == purpose]
        for run in runs:
            run.cancel()
        return runs

    def abandon(self, run: Run | None) -> None:
        """Cancel ``run`` and stop tracking it: its terminal message will be ignored."""
        if run is None:
            return
        run.cancel()
        self._runs.pop(run.id, None)
        self.registry.forget(run)

"""Running searches off the UI thread.

:class:`SolverPool` keeps one :class:`~specsearch.core.Solver` (models stay
loaded between questions) and replaces it when the model settings change; it
also says where the loaded models' layers are and, once per loaded solver,
warns about GPU layers a CPU-only build cannot offload.
:class:`EventBatcher` turns the core's event stream into at most
``1/interval`` messages a second.  :func:`run_search_job` is the body of a
search run's thread worker (app/runs.py): it only ever *posts* messages, and
ends with exactly one terminal message, :class:`SearchCompleted` (carrying the
result, also a cancelled one) or :class:`SearchFailed`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from textual.message import Message

from specsearch.core.api import Solver
from specsearch.core.errors import SpecSearchError
from specsearch.core.events import CancelToken, SearchEvent, SearchFinished
from specsearch.core.offload import Offload, gpu_layers_asked, offload_warning
from specsearch.core.remote_client import ServedModel
from specsearch.core.tree import SearchResult
from specsearch.models.locations import auto_memory_file

from .messages import ModelsLoaded, SearchCompleted, SearchEvents, SearchFailed, SearchStatus
from .settings import ResolvedModels, Settings

Post = Callable[[Message], object]

REFRESH_HZ = 15.0


class EventBatcher:
    """Collects events from the search thread; hands them on in batches, at most one
    batch per ``interval`` seconds, and never sits on an event for longer than that."""

    def __init__(self, deliver: Callable[[tuple[SearchEvent, ...]], object], interval: float = 1 / REFRESH_HZ) -> None:
        self.deliver = deliver
        self.interval = interval
        self._buffer: list[SearchEvent] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last = 0.0
        self._closed = False

    def push(self, event: SearchEvent) -> None:
        with self._lock:
            if self._closed:
                return
            self._buffer.append(event)
            if self._timer is not None:
                return  # a flush is already scheduled
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()
                return
        self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = tuple(self._buffer), []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._last = time.monotonic()
            if batch:
                # deliver under the lock: batches keep their order across threads
                self.deliver(batch)

    def close(self) -> None:
        """Deliver what is left; later pushes are dropped."""
        self.flush()
        with self._lock:
            self._closed = True


class SolverPool:
    """One Solver at a time, keyed by the model specs and the reward model's settings
    (kind, head file, arithmetic check): changing any of them loads a new one; thread-safe."""

    def __init__(self, factory: Callable[..., Solver] = Solver, auto_memory: Path | None = None) -> None:
        """``auto_memory``: the file in which method auto keeps what it learned between runs of
        the app (default: the data dir's auto_memory.json)."""
        self._factory = factory
        self._auto_memory = auto_memory
        self._lock = threading.Lock()
        self._solver: Solver | None = None
        self._key: tuple | None = None
        self._warned: tuple | None = None  # the solver key whose GPU-layers warning was given

    @staticmethod
    def _key_of(models: ResolvedModels, prm_kind: str, prm_head: str | None, arith_check: bool) -> tuple:
        return (models.key(), prm_kind, prm_head or None, bool(arith_check))

    def get(self, models: ResolvedModels, prm_kind: str, prm_head: str | None = None,
            arith_check: bool = True) -> Solver:
        key = self._key_of(models, prm_kind, prm_head, arith_check)
        with self._lock:
            if self._solver is None or self._key != key:
                old, self._solver = self._solver, None
                if old is not None:
                    old.close()
                s = models.specs
                head = str(Path(prm_head).expanduser()) if prm_head else None
                self._solver = self._factory(s["small"], s["large"], s["prm"], prm_kind=prm_kind,
                                             prm_head=head, arith_check=arith_check,
                                             auto_memory=self._auto_memory or auto_memory_file())
                self._key = key
            return self._solver

    def for_settings(self, models: ResolvedModels, settings: Settings) -> Solver:
        """The solver for ``models`` with the reward-model choices of ``settings``."""
        return self.get(models, settings.prm_kind, settings.prm_head, settings.arith_check)

    def offload_warning(self, models: ResolvedModels) -> str | None:
        """The warning for GPU layers a CPU-only build cannot offload, the first time it is asked
        for the current solver (each search loads through here; the user hears it once)."""
        with self._lock:
            if self._key is None or self._warned == self._key:
                return None
            self._warned = self._key
        return offload_warning(gpu_layers_asked(models.specs))

    def offload_by_path(self) -> dict[str, Offload]:
        """Where the loaded models' layers are, by model file (for the model manager)."""
        with self._lock:
            solver = self._solver
        if solver is None:
            return {}
        return {str(Path(solver.model_files[role].path)): o for role, o in solver.offload().items()}

    def loaded(self, models: ResolvedModels, prm_kind: str, prm_head: str | None = None,
               arith_check: bool = True) -> bool:
        with self._lock:
            return self._solver is not None and self._key == self._key_of(models, prm_kind, prm_head, arith_check)

    def close(self) -> None:
        with self._lock:
            if self._solver is not None:
                self._solver.close()
            self._solver, self._key = None, None


def describe_error(exc: BaseException) -> str:
    """One line for the user; the core's own errors already name their cause."""
    if isinstance(exc, SpecSearchError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def load_models(pool: SolverPool, models: ResolvedModels, settings: Settings, methods: Sequence[str],
                post: Post, run_id: int) -> Solver:
    """The pooled solver with every model ``methods`` need loaded (status posted meanwhile)."""
    solver = pool.for_settings(models, settings)
    post(SearchStatus(run_id, "loading models…"))
    for method in methods:
        solver.models(method)
    where = {role: o.label() for role, o in solver.offload().items()}
    # A served model runs where its server put it: say which server.
    where.update({role: f"served at {spec.base_url}" for role, spec in solver.model_files.items()
                  if isinstance(spec, ServedModel) and role in solver.loaded_roles()})
    post(ModelsLoaded(run_id, where, pool.offload_warning(models)))
    return solver


def run_search_job(pool: SolverPool, models: ResolvedModels, settings: Settings, question: str, method: str,
                   run_id: int, cancel: CancelToken, post: Post, interval: float = 1 / REFRESH_HZ,
                   preload: Sequence[str] = (), cold: bool = False) -> SearchResult | None:
    """Solve ``question`` and post SearchStatus / SearchEvents, then SearchCompleted or SearchFailed.
    ``preload``: methods whose models load too, before the search (race mode times neither's loading).
    ``cold``: the models' caches are emptied first (Solver.drop_cached_tokens), for a search timed
    against another on the same question (the race's legs, the baseline)."""
    batcher = EventBatcher(lambda events: post(SearchEvents(run_id, events)), interval)

    def forward(event: SearchEvent) -> None:
        if not isinstance(event, SearchFinished):  # its result goes once, in SearchCompleted
            batcher.push(event)

    try:
        solver = load_models(pool, models, settings, [method, *preload], post, run_id)
        if cold:
            solver.drop_cached_tokens()
        post(SearchStatus(run_id, f"searching ({method})…"))
        result = solver.solve(question, settings.search_config(method), on_event=forward, cancel=cancel)
    except Exception as exc:  # every failure reaches the user as a message, the app keeps running
        batcher.close()
        post(SearchFailed(run_id, describe_error(exc)))
        return None
    batcher.close()
    post(SearchCompleted(run_id, result))
    return result

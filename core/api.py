"""Python API: load the models a method needs once, then run searches.

    from specsearch.core import Solver, SearchConfig
    solver = Solver(small="S.gguf", large="L.gguf", prm="S.gguf", prm_kind="judge")
    result = solver.solve("What is 2+3?", SearchConfig(method="specsearch"), on_event=print)
    print(result.answer, result.stats.to_dict())

Models load lazily, on the first search that needs them; a PRM file that is
also the small or large model shares that model's engine (and memory).
Searches run on the caller's thread, one at a time; events arrive on it too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .config import SearchConfig
from .engine import Engine, LoadOptions
from .events import CancelToken, EventBus, SearchEvent
from .generators import Models
from .prm import RewardModel, make_prm
from .search import run_search
from .speculative import SpeculativeDecoder
from .tree import SearchResult


@dataclass(frozen=True)
class ModelSpec:
    path: str
    n_gpu_layers: int | None = None
    n_ctx: int | None = None
    n_threads: int | None = None

    def options(self, batch_invariant: bool = False) -> LoadOptions:
        return LoadOptions(n_ctx=self.n_ctx, n_gpu_layers=self.n_gpu_layers, n_threads=self.n_threads,
                           batch_invariant=batch_invariant)


def _spec(model: str | Path | ModelSpec | None) -> ModelSpec | None:
    if model is None or isinstance(model, ModelSpec):
        return model
    return ModelSpec(str(model))


class Solver:
    def __init__(
        self,
        small: str | Path | ModelSpec | None = None,
        large: str | Path | ModelSpec | None = None,
        prm: str | Path | ModelSpec | None = None,
        prm_kind: str = "judge",
        *,
        batch_invariant: bool = False,
        spec_tokens: int = 4,
        adaptive_draft: bool = True,
    ) -> None:
        self.specs = {"small": _spec(small), "large": _spec(large), "prm": _spec(prm)}
        self.prm_kind = prm_kind
        self.batch_invariant = batch_invariant
        self.spec_tokens = spec_tokens
        self.adaptive_draft = adaptive_draft
        self.events = EventBus()
        self._engines: dict[str, Engine] = {}
        self._prm: RewardModel | None = None
        self._spec: SpeculativeDecoder | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ models ---
    def engine(self, role: str) -> Engine | None:
        """The loaded engine for a role (small, large, prm), loading it if needed."""
        spec = self.specs[role]
        if spec is None:
            return None
        if role not in self._engines:
            for other, loaded in self._engines.items():
                if self.specs[other] and Path(self.specs[other].path) == Path(spec.path):
                    self._engines[role] = loaded  # same file: share the engine
                    break
            else:
                self._engines[role] = Engine(spec.path, spec.options(self.batch_invariant))
        return self._engines[role]

    def models(self, method: str) -> Models:
        needs_small = method in ("small", "sps", "specsearch")
        needs_large = method in ("ar", "sps", "specsearch")
        small = self.engine("small") if needs_small else None
        large = self.engine("large") if needs_large else None
        spec = None
        if small is not None and large is not None:
            if self._spec is None:
                self._spec = SpeculativeDecoder(large, small, k=self.spec_tokens, adaptive=self.adaptive_draft)
            spec = self._spec
        return Models(small=small, large=large, prm=self.reward_model(), spec=spec)

    def reward_model(self) -> RewardModel | None:
        if self._prm is None and self.specs["prm"] is not None:
            self._prm = make_prm(self.prm_kind, self.engine("prm"))
        return self._prm

    # ---------------------------------------------------------- searches ---
    def solve(
        self,
        question: str,
        config: SearchConfig | None = None,
        on_event: Callable[[SearchEvent], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> SearchResult:
        config = config or SearchConfig()
        with self._lock:
            unsubscribe = self.events.subscribe(on_event) if on_event else None
            try:
                return run_search(question, self.models(config.method), config, self.events.emit, cancel)
            finally:
                if unsubscribe:
                    unsubscribe()

    def next_step(self, question: str, previous_steps: Sequence[str], config: SearchConfig | None = None) -> str:
        """One more reasoning step after ``previous_steps`` (a tutoring hint)."""
        base = config or SearchConfig()
        one = SearchConfig.from_dict({**base.to_dict(), "max_depth": 1, "beam_width": 1})
        with self._lock:
            result = run_search(question, self.models(one.method), one, self.events.emit, None, previous_steps)
        return result.node(result.best_leaf_id).text if result.best_leaf_id is not None else ""

    def judge_step(self, question: str, steps: Sequence[str]) -> float:
        """The reward model's score in [0, 1] for the last of ``steps``."""
        with self._lock:
            prm = self.reward_model()
            if prm is None:
                raise ValueError("no reward model configured")
            return prm.score_last(question, [list(steps)])[0]

    def close(self) -> None:
        with self._lock:
            for engine in {id(e): e for e in self._engines.values()}.values():
                engine.close()
            self._engines.clear()
            self._prm = None
            self._spec = None

    def __enter__(self) -> "Solver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

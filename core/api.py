"""Python API: load the models a method needs once, then run searches.

    from specsearch.core import Solver, SearchConfig
    solver = Solver(small="S.gguf", large="L.gguf", prm="S.gguf", prm_kind="judge")
    result = solver.solve("What is 2+3?", SearchConfig(method="specsearch"), on_event=print)
    print(result.answer, result.stats.to_dict())

Models load lazily, on the first search that needs them (the roles its entry in
core.methods names); a PRM file that is also the small or large model shares
that model's engine (and memory).
Searches run on the caller's thread, one at a time; events arrive on it too.
Loading is thread-safe: callers on several threads share one load of each model.
``Solver.offload()`` says where each loaded model's layers are (core/offload.py).

A large model or PRM may be served (an http(s) URL or a core.remote_client.ServedModel):
it is a core.remote_model.RemoteModel tokenizing with a local GGUF (default: the small
model's file), checked once when loaded; with a served large model the Solver does no
token-level drafting (the server's own speculation applies) and says so once, in a
Notice event of the first search.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .auto_memory_store import AutoMemoryStore, file_identity, memory_to_dict, solver_identity
from .auto_method import AutoMemory
from .config import SearchConfig
from .engine import Engine, LoadOptions
from .errors import SpecSearchError
from .events import CancelToken, Notice, SearchEvent, SearchFinished, SearchStarted
from .generators import Models
from .methods import get_method
from .offload import Offload
from .prm import DEFAULT_PRM_KIND, RewardModel, make_prm, prm_kind
from .prm_info import PRM_KEY, describe_prm
from .remote_client import ServedModel, is_url
from .remote_model import RemoteModel
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


ModelChoice = str | Path | ModelSpec | ServedModel | None


def _model_spec(model: ModelChoice) -> ModelSpec | ServedModel | None:
    if model is None or isinstance(model, (ModelSpec, ServedModel)):
        return model
    return ServedModel(model) if is_url(model) else ModelSpec(str(model))


class Solver:
    def __init__(
        self,
        small: ModelChoice = None,
        large: ModelChoice = None,
        prm: ModelChoice = None,
        prm_kind: str = DEFAULT_PRM_KIND,
        *,
        prm_head: str | Path | None = None,
        arith_check: bool = True,
        batch_invariant: bool = False,
        spec_tokens: int = 4,
        adaptive_draft: bool = True,
        auto_memory: str | Path | None = None,
    ) -> None:
        """``auto_memory``: a file in which method auto keeps what it learned for the next
        process on the same models and settings (core.auto_memory_store; None: this Solver only)."""
        self.model_files = {"small": _model_spec(small), "large": _model_spec(large), "prm": _model_spec(prm)}
        self.prm_kind = prm_kind
        self.prm_head = str(prm_head) if prm_head is not None else None
        # Exact arithmetic check on top of any PRM: a step whose written
        # equation is wrong scores as wrong whatever the model says.
        self.arith_check = arith_check
        self.batch_invariant = batch_invariant
        # The speculative decoder's starting draft length; it adapts from there, across searches.
        self.spec_tokens = spec_tokens
        self.adaptive_draft = adaptive_draft
        self._engines: dict[str, Engine] = {}
        self._prm: RewardModel | None = None
        self._prm_description: dict | None = None
        self._speculative_decoder: SpeculativeDecoder | None = None
        self._notices: list[str] = []  # said once, in the next search's events
        # What generators learn in one search and keep for the next on these models (auto's cost model).
        self._between_searches: dict = {}
        self._memory_store = AutoMemoryStore(auto_memory) if auto_memory is not None else None
        self._memory_identity: str | None = None  # set when the file was read, for this Solver's life
        self._memory_saved: dict[str, dict] = {}  # memory_key -> the memory as last read or written
        self._told_no_drafting = False
        self._lock = threading.Lock()  # one search at a time
        # Loading: callers on several threads (two app screens) share one load of each model.
        # Taken after _lock when both are held, and without _lock to load while a search runs.
        self._load_lock = threading.RLock()

    # ------------------------------------------------------------ models ---
    def engine(self, role: str) -> Engine | RemoteModel | None:
        """The loaded engine for a role (small, large, prm), loading it if needed."""
        model_file = self.model_files[role]
        if model_file is None:
            return None
        with self._load_lock:
            return self._load_engine(role, model_file)

    def _load_engine(self, role: str, model_file: ModelSpec | ServedModel) -> Engine | RemoteModel:
        if role not in self._engines:
            for other, loaded in self._engines.items():
                other_file = self.model_files[other]
                if other_file and type(other_file) is type(model_file) and (
                        other_file == model_file if isinstance(model_file, ServedModel)
                        else Path(other_file.path) == Path(model_file.path)):
                    self._engines[role] = loaded  # same file (or server): share the engine
                    break
            else:
                self._engines[role] = self._new_engine(role, model_file)
        return self._engines[role]

    def loaded_roles(self) -> tuple[str, ...]:
        """The roles whose model (local or served) is loaded."""
        with self._load_lock:
            return tuple(self._engines)

    def offload(self) -> dict[str, Offload]:
        """Where each loaded local model's layers are (role -> Offload); roles not loaded yet, and
        served models, are absent."""
        with self._load_lock:
            return {role: engine.offload for role, engine in self._engines.items() if isinstance(engine, Engine)}

    def _new_engine(self, role: str, model_file: ModelSpec | ServedModel) -> Engine | RemoteModel:
        if not isinstance(model_file, ServedModel):
            return Engine(model_file.path, model_file.options(self.batch_invariant))
        small = self.model_files["small"]
        if model_file.tokenizer is None and isinstance(small, ModelSpec):
            model_file = model_file.with_tokenizer(small.path)  # a pair shares its vocabulary
        remote = RemoteModel(model_file, role)
        try:
            remote.probe()  # an unusable server is an error now, not mid-search
        except BaseException:
            remote.close()
            raise
        return remote

    def models(self, method: str) -> Models:
        """The models ``method`` needs (its roles in core.methods), loaded; a missing one stays None
        and the method's generator says so (core.methods.make_generator)."""
        with self._load_lock:
            return self._load_models(get_method(method).roles)

    def _load_models(self, roles: tuple[str, ...]) -> Models:
        small = self.engine("small") if "small" in roles else None
        large = self.engine("large") if "large" in roles else None
        decoder = None
        if isinstance(large, RemoteModel):
            if small is not None and not self._told_no_drafting:
                self._told_no_drafting = True
                self._notices.append(f"token-level drafting is off: the large model is served at "
                                     f"{large.served.base_url} (its server's own speculation applies)")
        elif small is not None and large is not None:
            if self._speculative_decoder is None:
                self._speculative_decoder = SpeculativeDecoder(large, small, k=self.spec_tokens,
                                                               adaptive=self.adaptive_draft)
            decoder = self._speculative_decoder
        return Models(small=small, large=large, prm=self.reward_model(), speculative_decoder=decoder,
                      between_searches=self._between_searches)

    def reward_model(self) -> RewardModel | None:
        """The PRM (built on first use); None when its kind needs a model and none was given.
        An unknown kind raises PRMKindError; a kind that needs no model loads none."""
        with self._load_lock:
            return self._load_reward_model()

    def _load_reward_model(self) -> RewardModel | None:
        if self._prm is None:
            needs_model = prm_kind(self.prm_kind).needs_model
            if needs_model and self.model_files["prm"] is None:
                return None
            engine = self.engine("prm") if needs_model else None
            kind = self.prm_kind
            if isinstance(engine, RemoteModel):
                kind = remote_prm_kind(kind, engine)
            prm = make_prm(kind, engine, head=self.prm_head)
            if self.arith_check and needs_model:  # a kind without a model is a check of its own
                from .arithmetic import ArithmeticGuard

                prm = ArithmeticGuard(prm)
            self._prm = prm
        return self._prm

    def prm_description(self) -> dict:
        """The reward model in use as {"kind", "model", "head", "arith_check"} (file names; see
        core.prm_info.prm_label for one line).  Every search records it in its config["prm"]."""
        if self._prm_description is None:
            needs_model = prm_kind(self.prm_kind).needs_model
            prm_file = self.model_files["prm"] if needs_model else None
            head, kind = self.prm_head, self.prm_kind
            if isinstance(prm_file, ServedModel):
                kind, head = served_prm_kind(kind), None
            elif head is None and kind in ("head", "auto") and prm_file is not None:
                head = self._shipped_head(prm_file.path)
            if kind == "auto":  # say what auto chose
                kind = "head" if head else "judge"
            # Kind arith is the check itself; the guard goes only on top of a model.
            checked = kind == "arith" or (self.arith_check and needs_model)
            self._prm_description = describe_prm(kind, prm_file.path if prm_file else None,
                                                 head if kind == "head" else None, checked)
        return dict(self._prm_description)

    @property
    def notices(self) -> list[str]:
        """What the next search will say once in Notice events (e.g. drafting turned off)."""
        return list(self._notices)

    @staticmethod
    def _shipped_head(backbone: str) -> str | None:
        """The head shipped for ``backbone`` (kind head without --head), found as the kind finds it."""
        from .prm_head import shipped_head_for

        try:
            found = shipped_head_for(backbone)
        except (OSError, SpecSearchError):
            return None
        return str(found) if found else None

    def _emitter(self, on_event: Callable[[SearchEvent], None] | None) -> Callable[[SearchEvent], None]:
        """``on_event`` (the one route of a search's events), recording the PRM description in
        the search's config, and saying pending notices after SearchStarted."""
        prm = self.prm_description() if self._prm is not None else None
        notices, self._notices = self._notices, []

        def emit(event: SearchEvent) -> None:
            if prm is not None and isinstance(event, SearchStarted):
                event = dataclasses.replace(event, config={**event.config, PRM_KEY: prm})
            elif prm is not None and isinstance(event, SearchFinished):
                event.result.config[PRM_KEY] = prm  # the result is returned as is: it carries it too
            if on_event is not None:
                on_event(event)
                if isinstance(event, SearchStarted):
                    for message in notices:
                        on_event(Notice(message))

        return emit

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
            models = self.models(config.method)
            self._recall_auto_memory()
            try:
                return run_search(question, models, config, self._emitter(on_event), cancel)
            finally:
                self._keep_auto_memory()

    def _distinct_engines(self) -> list[Engine | RemoteModel]:
        """The loaded engines, each once (roles with the same file share one)."""
        return list({id(e): e for e in self._engines.values()}.values())

    def drop_cached_tokens(self) -> None:
        """Forget the token sequences the local models hold in their KV caches, so the next search
        reads its prompt as a fresh process would.  Searches timed against each other (bench, a
        race) start so: otherwise the second finds the question already read by the first, and
        is a few seconds faster for it on a CPU.  What was learned (auto, the decoder's draft
        length) is kept."""
        with self._lock, self._load_lock:
            for engine in self._distinct_engines():
                reset = getattr(engine, "reset_cache", None)  # a served model has no cache here
                if reset is not None:
                    reset()

    # ------------------------------------------------ auto's memory file ---
    def _identity(self) -> str:
        """The models and settings auto's memory file knows this Solver by."""
        def spec(model: ModelSpec | ServedModel | None) -> object:
            if isinstance(model, ModelSpec):
                return {**dataclasses.asdict(model), **file_identity(model.path)}
            return None if model is None else {"url": model.base_url, "model": model.model}

        head = file_identity(self.prm_head) if self.prm_head else None
        return solver_identity({"models": {r: spec(m) for r, m in self.model_files.items()}, "prm_kind": self.prm_kind,
                                "head": head, "arith_check": self.arith_check,
                                "batch_invariant": self.batch_invariant, "spec_tokens": self.spec_tokens,
                                "adaptive_draft": self.adaptive_draft})

    def _recall_auto_memory(self) -> None:
        if self._memory_store is None or self._memory_identity is not None:
            return
        self._memory_identity = self._identity()
        for key, memory in self._memory_store.load(self._memory_identity).items():
            self._between_searches.setdefault(key, memory)
            self._memory_saved[key] = memory_to_dict(memory)

    def _keep_auto_memory(self) -> None:
        if self._memory_store is None or self._memory_identity is None:
            return
        now = {k: memory_to_dict(v) for k, v in self._between_searches.items() if isinstance(v, AutoMemory)}
        changed = {k: d for k, d in now.items() if self._memory_saved.get(k) != d}
        try:
            self._memory_store.save(self._memory_identity, changed)  # a search by another method changes nothing
            self._memory_saved.update(changed)
        except OSError as exc:  # a full disk loses the cache, not the answer
            self._notices.append(f"auto's memory was not saved ({self._memory_store.path}: {exc.strerror or exc})")

    def next_step(self, question: str, previous_steps: Sequence[str], config: SearchConfig | None = None) -> str:
        """One more reasoning step after ``previous_steps`` (a tutoring hint)."""
        base = config or SearchConfig()
        one = SearchConfig.from_dict({**base.to_dict(), "max_depth": 1, "beam_width": 1, "search": "beam"})
        with self._lock:
            models = self.models(one.method)
            result = run_search(question, models, one, self._emitter(None), None, previous_steps)
        return result.node(result.best_leaf_id).text if result.best_leaf_id is not None else ""

    def judge_step(self, question: str, steps: Sequence[str]) -> float:
        """The reward model's score in [0, 1] for the last of ``steps``."""
        with self._lock:
            prm = self.reward_model()
            if prm is None:
                raise ValueError("no reward model configured")
            return prm.score_last(question, [list(steps)])[0]

    def close(self) -> None:
        with self._lock, self._load_lock:
            for engine in self._distinct_engines():
                engine.close()
            self._engines.clear()
            self._prm = None
            self._prm_description = None
            self._speculative_decoder = None
            self._between_searches.clear()
            self._memory_identity = None
            self._memory_saved.clear()
            self._told_no_drafting = False

    def __enter__(self) -> "Solver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


REMOTE_PRM_KINDS = ("judge", "step-tag")
"""The PRM kinds a served model can be: they read log-probs of candidate tokens, which
a completions server returns; the others need the model's hidden states or a local check."""


def served_prm_kind(kind: str) -> str:
    """What ``kind`` means for a served reward model: auto is judge (a server has no shipped head)."""
    return "judge" if kind == "auto" else kind


def remote_prm_kind(kind: str, model: RemoteModel) -> str:
    """``kind`` for a served reward model (served_prm_kind), after checking once that the
    server returns top log-probs; PRMKindError for a kind a server cannot serve."""
    from .prm import PRMKindError

    kind = served_prm_kind(kind)
    if kind not in REMOTE_PRM_KINDS:
        raise PRMKindError(f"PRM kind {kind!r} needs a local model; a served reward model "
                           f"({model.served.base_url}) scores with {' or '.join(REMOTE_PRM_KINDS)}")
    model.probe_logprobs()
    return kind

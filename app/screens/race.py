"""Race mode: ar (large model alone) and specsearch on the same question, one after
the other, with the measured speed-up and whether the answers agree.  Each leg is a
run of its own (app/runs.py); the next starts when the previous one completes."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Static

from specsearch.core.answers import is_equivalent
from specsearch.core.tree import SearchResult

from ..formatting import fmt_secs
from ..history import Conversation, Exchange
from ..live import LiveSearch
from ..messages import ModelsLoaded, RunEnded, SearchCompleted, SearchEvents, SearchFailed, SearchStatus
from ..runs import RunController
from ..search_worker import run_search_job
from ..services import AppServices
from ..settings import ResolvedModels, Settings, missing_message, resolve_models
from ..widgets.question_input import QuestionInput
from ..widgets.search_panel import SearchPanel

RACED_METHODS = ("ar", "specsearch")  # the baseline, then the method it is raced against (names in core.methods)
NOTE = ("The two searches run one after the other, not at once: on a 2-core machine running both "
        "together would slow each down and spoil the timing. Same question, same settings and seed; "
        "model loading is not timed.")


def verdict(ar: SearchResult | None, spec: SearchResult | None) -> str:
    """'specsearch ×1.84 faster (ar 12.1 s vs 6.6 s) · answers agree: 18 = 18'"""
    if ar is None or spec is None:
        return "Race incomplete."
    if ar.cancelled or spec.cancelled:
        return "Race cancelled: no speed-up measured."
    parts = []
    if spec.stats.wall_seconds > 0:
        ratio = ar.stats.wall_seconds / spec.stats.wall_seconds
        word = "faster" if ratio >= 1 else "slower"
        parts.append(f"specsearch ×{ratio:.2f} {word} — measured (ar {fmt_secs(ar.stats.wall_seconds)} "
                     f"vs specsearch {fmt_secs(spec.stats.wall_seconds)})")
    if ar.answer is None or spec.answer is None:
        parts.append(f"answers: ar {ar.answer or '(none)'}, specsearch {spec.answer or '(none)'} — cannot compare")
    elif is_equivalent(spec.answer, ar.answer):
        parts.append(f"answers agree ✓ ({spec.answer} = {ar.answer})")
    else:
        parts.append(f"answers differ ✗ (ar {ar.answer}, specsearch {spec.answer})")
    return " · ".join(parts)


class RaceScreen(Screen):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel race"),
    ]
    DEFAULT_CSS = """
    RaceScreen #race-note { height: auto; padding: 0 1; color: $text-muted; }
    RaceScreen #race-panels { height: 1fr; }
    RaceScreen SearchPanel { width: 1fr; border-left: solid $primary-muted; }
    RaceScreen #race-verdict { height: auto; padding: 0 1; text-style: bold; background: $boost; }
    RaceScreen QuestionInput { height: 3; }
    """

    def __init__(self, services: AppServices, **kwargs) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.runs = RunController(self, services.runs)  # one run per leg, purpose = its method
        self.lives: dict[str, LiveSearch] = {}
        self.results: dict[str, SearchResult] = {}
        self.conversation: Conversation | None = None
        self.exchange: Exchange | None = None
        self._ticker: Timer | None = None
        self._leg: tuple[ResolvedModels, Settings, str] | None = None  # what the next leg runs on
        self.done = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield QuestionInput("A question to race ar against specsearch…", id="race-question",
                            history=self.services.question_history)
        yield Static(Text(NOTE), id="race-note")
        with Horizontal(id="race-panels"):
            yield SearchPanel("ar — large model alone", id="panel-ar")
            yield SearchPanel("specsearch", id="panel-specsearch")
        yield Static(Text("Type a question and press Enter to race ar against specsearch."), id="race-verdict")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "race"
        self.query_one(QuestionInput).border_title = "Race question (Enter starts)"
        self.query_one(QuestionInput).focus()

    def panel(self, method: str) -> SearchPanel:
        return self.query_one(f"#panel-{method}", SearchPanel)

    @on(QuestionInput.Submitted)
    def _submitted(self, event: QuestionInput.Submitted) -> None:
        self.start(event.text)

    def start(self, question: str) -> None:
        if self.runs.busy:
            self.notify("A race is running — Esc cancels it.", severity="warning")
            return
        settings = self.services.settings
        models = resolve_models(settings)
        problems = [p for p in (missing_message(models, m) for m in RACED_METHODS) if p]
        if problems:
            self.query_one("#race-verdict", Static).update(Text("⚠ " + problems[-1]))
            self.notify(problems[-1], title="Models missing", severity="error", timeout=8)
            return
        self.done = False
        self.results.clear()
        self.lives = {method: LiveSearch(question, method) for method in RACED_METHODS}
        for method in RACED_METHODS:
            self.panel(method).show(None)
            self.panel(method).set_status("waiting")
        self.conversation = Conversation.new()
        self.exchange = Exchange(question, "race", settings.to_dict())
        self.conversation.exchanges.append(self.exchange)
        self.services.save_conversation(self.conversation)
        self.query_one("#race-verdict", Static).update(Text("Racing… (Esc cancels)"))
        self._ticker = self.set_interval(0.5, self._tick)
        self._leg = (models, settings, question)
        self._start_leg(RACED_METHODS[0], preload=RACED_METHODS[1:])

    def _start_leg(self, method: str, preload: tuple[str, ...] = ()) -> None:
        """One search of the race; the first loads every leg's models (loading is not timed)."""
        assert self._leg is not None
        models, settings, question = self._leg
        pool = self.services.pool
        # Each leg cold: the second must not find the question already read by the first.
        self.runs.start(method, lambda run: run_search_job(pool, models, settings, question, method, run.id,
                                                           run.token, self.post_message, preload=preload, cold=True))

    def _tick(self) -> None:
        for method, live in self.lives.items():
            if live.nodes or live.steps:
                self.panel(method).stats.refresh_stats()

    @on(SearchStatus)
    def _status(self, message: SearchStatus) -> None:
        run = self.runs.of(message)
        if run is not None:
            self.panel(run.purpose).set_status(message.text)

    @on(ModelsLoaded)
    def _models_loaded(self, message: ModelsLoaded) -> None:  # bubbles on to the app (its warning)
        run = self.runs.of(message)
        if run is not None:
            self.lives[run.purpose].models = dict(message.offload)

    @on(SearchEvents)
    def _events(self, message: SearchEvents) -> None:
        run = self.runs.of(message)
        if run is None:
            return
        live = self.lives[run.purpose]
        panel = self.panel(run.purpose)
        if panel.live is not live:
            live.started = time.monotonic()
            panel.show(live)
        live.apply(message.events)
        panel.sync()

    @on(RunEnded)
    def _run_ended(self, message: RunEnded) -> None:
        run = self.runs.end(message)
        if run is None:
            return
        if isinstance(message, SearchCompleted):
            self._completed(run.purpose, message.result)
        elif isinstance(message, SearchFailed):
            self._failed(run.purpose, message.error)

    def _completed(self, method: str, result: SearchResult) -> None:
        live = self.lives[method]
        panel = self.panel(method)
        if panel.live is not live:
            panel.show(live)
        live.finish(result)
        panel.sync()
        panel.set_status("cancelled" if result.cancelled else f"done in {fmt_secs(result.stats.wall_seconds)}")
        self.results[method] = result
        if method == "ar" and not result.cancelled:
            other = self.panel("specsearch")
            other.stats.baseline_seconds = result.stats.wall_seconds  # its speed-up is now measured
        if self.exchange is not None:
            self.exchange.runs.append(result)
        if method == RACED_METHODS[-1] or result.cancelled:
            self._finish()
            return
        if self.conversation is not None:
            self.services.save_conversation(self.conversation)
        self._start_leg(RACED_METHODS[RACED_METHODS.index(method) + 1])

    def _failed(self, method: str, error: str) -> None:
        self.panel(method).set_status("failed")
        self.notify(error, title="Race failed", severity="error", timeout=10)
        if self.exchange is not None:
            self.exchange.status, self.exchange.error = "error", error
        self._finish(error)

    def _finish(self, error: str | None = None) -> None:
        ar, spec = self.results.get("ar"), self.results.get("specsearch")
        text = f"⚠ {error}" if error else verdict(ar, spec)
        self.query_one("#race-verdict", Static).update(Text(text))
        if ar is not None and not ar.cancelled and self.exchange is not None:
            self.services.baselines[self.exchange.question.strip()] = ar.stats.wall_seconds
        if ar is not None and spec is not None and not ar.cancelled and spec.stats.wall_seconds > 0:
            spec.stats.measured_speedup = ar.stats.wall_seconds / spec.stats.wall_seconds  # saved beside the prediction
        if self.exchange is not None and error is None:
            self.exchange.answer = spec.answer if spec is not None else None
            self.exchange.stats = spec.stats if spec is not None else None
            cancelled = any(r.cancelled for r in self.results.values()) or len(self.results) < len(RACED_METHODS)
            self.exchange.status = "cancelled" if cancelled else "done"
        if self.conversation is not None:
            self.services.save_conversation(self.conversation)
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self._leg = None
        self.done = True

    def action_cancel(self) -> None:
        if self.runs.cancel():
            self.query_one("#race-verdict", Static).update(Text("Cancelling after the current step…"))

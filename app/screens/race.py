"""Race mode: ar (large model alone) and specsearch on the same question, one after
the other, with the measured speed-up and whether the answers agree."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Static

from specsearch.core.answers import is_equivalent
from specsearch.core.events import CancelToken
from specsearch.core.tree import SearchResult

from ..formatting import fmt_secs
from ..history import Conversation, Exchange
from ..live import LiveSearch
from ..messages import SearchCompleted, SearchEvents, SearchFailed, SearchStatus
from ..search_worker import describe_error, load_models, run_search_job
from ..settings import ResolvedModels, Settings, missing_message, resolve_models
from ..widgets.question_input import QuestionInput
from ..widgets.search_panel import SearchPanel

if TYPE_CHECKING:
    from ..app import SpecSearchApp

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

    app: "SpecSearchApp"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cancel_token: CancelToken | None = None
        self.runs: dict[int, str] = {}  # run id -> method
        self.lives: dict[str, LiveSearch] = {}
        self.results: dict[str, SearchResult] = {}
        self.conversation: Conversation | None = None
        self.exchange: Exchange | None = None
        self._ticker: Timer | None = None
        self.done = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield QuestionInput("A question to race ar against specsearch…", id="race-question", history=self.app.question_history)
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
        if self.cancel_token is not None:
            self.notify("A race is running — Esc cancels it.", severity="warning")
            return
        settings = self.app.settings
        models = resolve_models(settings)
        problems = [p for p in (missing_message(models, m) for m in RACED_METHODS) if p]
        if problems:
            self.query_one("#race-verdict", Static).update(Text("⚠ " + problems[-1]))
            self.notify(problems[-1], title="Models missing", severity="error", timeout=8)
            return
        self.done = False
        self.results.clear()
        self.runs.clear()
        self.lives = {}
        first_id, self.cancel_token = self.app.new_run()  # one token stops both runs
        run_ids = (first_id, self.app.next_run_id())
        for run_id, method in zip(run_ids, RACED_METHODS):
            self.runs[run_id] = method
            live = LiveSearch(question, method)
            live.config = settings.search_config(method).to_dict()
            self.lives[method] = live
        for method in RACED_METHODS:
            self.panel(method).show(None)
            self.panel(method).set_status("waiting")
        self.conversation = Conversation.new()
        self.exchange = Exchange(question, "race", settings.to_dict())
        self.conversation.exchanges.append(self.exchange)
        self.app.save_conversation(self.conversation)
        self.query_one("#race-verdict", Static).update(Text("Racing… (Esc cancels)"))
        self._ticker = self.set_interval(0.5, self._tick)
        self.race(models, settings, question, run_ids, self.cancel_token)

    @work(thread=True, exclusive=True, group="race")
    def race(self, models: ResolvedModels, settings: Settings, question: str, run_ids: tuple[int, ...],
             cancel: CancelToken) -> None:
        try:
            load_models(self.app.pool, models, settings, RACED_METHODS, self.post_message, run_ids[0])
        except Exception as exc:  # reported like a failed search
            self.post_message(SearchFailed(run_ids[0], describe_error(exc)))
            return
        for run_id, method in zip(run_ids, RACED_METHODS):
            if cancel.cancelled:
                break
            if run_search_job(self.app.pool, models, settings, question, method, run_id, cancel, self.post_message) is None:
                break

    def _tick(self) -> None:
        for method, live in self.lives.items():
            if live.nodes or live.steps:
                self.panel(method).stats.refresh_stats()

    @on(SearchStatus)
    def _status(self, message: SearchStatus) -> None:
        method = self.runs.get(message.run_id)
        if method is not None:
            self.panel(method).set_status(message.text)

    @on(SearchEvents)
    def _events(self, message: SearchEvents) -> None:
        method = self.runs.get(message.run_id)
        if method is None:
            return
        live = self.lives[method]
        panel = self.panel(method)
        if panel.live is not live:
            live.started = time.monotonic()
            panel.show(live)
        live.apply(message.events)
        panel.sync()

    @on(SearchCompleted)
    def _completed(self, message: SearchCompleted) -> None:
        method = self.runs.get(message.run_id)
        if method is None:
            return
        live = self.lives[method]
        panel = self.panel(method)
        if panel.live is not live:
            panel.show(live)
        if live.result is not message.result:
            live.finish(message.result)
        panel.sync()
        panel.set_status("cancelled" if message.result.cancelled else f"done in {fmt_secs(message.result.stats.wall_seconds)}")
        self.results[method] = message.result
        if method == "ar" and not message.result.cancelled:
            other = self.panel("specsearch")
            other.stats.baseline_seconds = message.result.stats.wall_seconds  # its speed-up is now measured
        if self.exchange is not None:
            self.exchange.runs.append(message.result.to_dict())
        if method == RACED_METHODS[-1] or message.result.cancelled:
            self._finish()
        elif self.conversation is not None:
            self.app.save_conversation(self.conversation)

    @on(SearchFailed)
    def _failed(self, message: SearchFailed) -> None:
        method = self.runs.get(message.run_id)
        if method is None:
            return
        self.panel(method).set_status("failed")
        self.notify(message.error, title="Race failed", severity="error", timeout=10)
        if self.exchange is not None:
            self.exchange.status, self.exchange.error = "error", message.error
        self._finish(message.error)

    def _finish(self, error: str | None = None) -> None:
        ar, spec = self.results.get("ar"), self.results.get("specsearch")
        text = f"⚠ {error}" if error else verdict(ar, spec)
        self.query_one("#race-verdict", Static).update(Text(text))
        if ar is not None and not ar.cancelled and self.exchange is not None:
            self.app.baselines[self.exchange.question.strip()] = ar.stats.wall_seconds
        if self.exchange is not None and error is None:
            self.exchange.answer = spec.answer if spec is not None else None
            self.exchange.stats = spec.stats.to_dict() if spec is not None else None
            cancelled = any(r.cancelled for r in self.results.values()) or len(self.results) < len(RACED_METHODS)
            self.exchange.status = "cancelled" if cancelled else "done"
        if self.conversation is not None:
            self.app.save_conversation(self.conversation)
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self.app.forget_run(self.cancel_token)
        self.cancel_token = None
        self.done = True

    def action_cancel(self) -> None:
        if self.cancel_token is not None:
            self.cancel_token.cancel()
            self.query_one("#race-verdict", Static).update(Text("Cancelling after the current step…"))

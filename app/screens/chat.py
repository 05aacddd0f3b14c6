"""The chat: ask a question, watch the tree grow, read the answer."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Static

from specsearch.core.events import Notice
from specsearch.core.tree import SearchResult

from ..history import Conversation, Exchange
from ..live import LiveSearch
from ..messages import ModelsLoaded, RunEnded, SearchCompleted, SearchEvents, SearchFailed, SearchStatus
from ..runs import Run, RunController
from ..search_worker import run_search_job
from ..services import AppServices
from ..settings import missing_message, resolve_models
from ..widgets.chat_turn import ChatTurn
from ..widgets.question_input import QuestionInput
from ..widgets.search_panel import SearchPanel

WELCOME = (
    "Type a math question below and press Enter. The small model drafts each reasoning step, "
    "the reward model scores it, and the large model rewrites only the steps scoring below β; "
    "where that is slower than the large model alone, method auto (the default) lets it write. "
    "Esc cancels a running search (the tree so far stays)."
)
SAVE_EVERY = 2.0  # seconds between history saves while a search runs


class ChatScreen(Screen):
    """Runs: the question's search ("search") and, on Ctrl+B, an `ar` baseline ("baseline"):
    two independent run handles (app/runs.py), one at a time."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+n", "new_conversation", "New"),
        Binding("ctrl+t", "focus_tree", "Tree"),
        Binding("ctrl+b", "baseline", "Baseline (ar)"),
        Binding("ctrl+l", "focus_input", "Input", show=False),
    ]

    def __init__(self, services: AppServices, **kwargs) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.runs = RunController(self, services.runs)
        self.conversation: Conversation | None = None
        self.exchange: Exchange | None = None
        self.live: LiveSearch | None = None
        self.turn: ChatTurn | None = None
        self._ticker: Timer | None = None
        self._last_save = 0.0

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="chat-main"):
            with Vertical(id="chat-column"):
                with VerticalScroll(id="turns"):
                    yield Static(Text(WELCOME), id="welcome")
                yield QuestionInput("Ask a math question…", id="question", history=self.services.question_history)
            yield SearchPanel(id="panel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "chat"
        self.query_one("#question", QuestionInput).border_title = "Question (Enter sends, Ctrl+J new line, ↑ history)"
        self.query_one("#question").focus()

    # ------------------------------------------------------------- state ---
    @property
    def running(self) -> bool:
        """A search or a baseline runs (the models serve one at a time)."""
        return self.runs.busy

    # ------------------------------------------------------------ asking ---
    @on(QuestionInput.Submitted, "#question")
    async def _submitted(self, event: QuestionInput.Submitted) -> None:
        await self.ask(event.text)

    async def ask(self, question: str) -> None:
        if self.running:
            self.notify("A search is running — Esc cancels it.", severity="warning")
            return
        settings = self.services.settings
        models = resolve_models(settings)
        problem = missing_message(models, settings.method)
        turns = self.query_one("#turns", VerticalScroll)
        if problem:
            await turns.mount(Static(Text("⚠ " + problem), classes="error-note"))
            turns.scroll_end(animate=False)
            self.notify(problem, title="Models missing", severity="error", timeout=8)
            return
        if self.conversation is None:
            self.conversation = Conversation.new()
        self.exchange = Exchange(question, "chat", settings.to_dict())
        self.conversation.exchanges.append(self.exchange)
        self.services.save_conversation(self.conversation)

        self.turn = ChatTurn(question)
        await turns.mount(self.turn)
        turns.scroll_end(animate=False)
        self.live = LiveSearch(question, settings.method)
        panel = self.query_one(SearchPanel)
        panel.show(self.live, self.services.baseline_for(question))
        panel.set_status("starting…")
        self.turn.set_status("starting…")
        self._ticker = self.set_interval(0.5, self._tick)
        pool, method = self.services.pool, settings.method
        self.runs.start("search", lambda run: run_search_job(pool, models, settings, question, method, run.id,
                                                             run.token, self.post_message))

    def _tick(self) -> None:
        search = self.runs.get("search")
        if self.live is None or self.turn is None or search is None or self.live.done:
            return
        self.query_one(SearchPanel).stats.refresh_stats()
        step = len(self.live.steps)
        cancelling = " — cancelling after this step" if search.cancelled else ""
        self.turn.set_status(f"{self.query_one(SearchPanel).status or 'searching…'} step {step} · "
                             f"{self.live.elapsed:.1f} s{cancelling}")

    # ---------------------------------------------------------- messages ---
    @on(SearchStatus)
    def _status(self, message: SearchStatus) -> None:
        run = self.runs.of(message)
        if run is None:
            return
        if run.purpose == "baseline":
            self.query_one(SearchPanel).set_status(f"baseline: {message.text}")
        else:
            self.query_one(SearchPanel).set_status(message.text)
            self._tick()

    @on(ModelsLoaded)
    def _models_loaded(self, message: ModelsLoaded) -> None:  # bubbles on to the app (its warning)
        run = self.runs.of(message)
        if run is not None and run.purpose == "search" and self.live is not None:
            self.live.models = dict(message.offload)
            self.query_one(SearchPanel).stats.refresh_stats()

    @on(SearchEvents)
    async def _events(self, message: SearchEvents) -> None:
        run = self.runs.of(message)
        if run is None or run.purpose != "search" or self.live is None or self.turn is None:
            return
        self.live.apply(message.events)
        for notice in (e for e in message.events if isinstance(e, Notice)):
            self.notify(notice.message, title="Note", timeout=8)  # e.g. drafting off for a served model
        self.query_one(SearchPanel).sync()
        await self.turn.stream(self.live)
        if time.monotonic() - self._last_save > SAVE_EVERY and self.exchange is not None and not self.live.done:
            self.exchange.runs, self.exchange.partial = [self.live.snapshot()], True
            self._save()

    @on(RunEnded)
    async def _run_ended(self, message: RunEnded) -> None:
        run = self.runs.end(message)
        if run is None:
            return
        if run.purpose == "baseline":
            self._baseline_ended(message)
        elif isinstance(message, SearchCompleted):
            await self._search_completed(message.result)
        elif isinstance(message, SearchFailed):
            await self._search_failed(message.error)
        self._end_run()

    async def _search_completed(self, result: SearchResult) -> None:
        if self.live is None or self.turn is None:
            return
        self.live.finish(result)
        panel = self.query_one(SearchPanel)
        panel.sync()
        panel.set_status("cancelled" if result.cancelled else "done")
        await self.turn.finish(self.live, result)
        if result.error:  # a served model failed: the tree so far is kept, as after Esc
            self.notify(result.error, title="Search stopped", severity="error", timeout=10)
        if self.exchange is not None:
            self.exchange.runs, self.exchange.partial = [result], False
            self.exchange.answer = result.answer
            self.exchange.stats = result.stats
            self.exchange.status = "cancelled" if result.cancelled else "done"

    async def _search_failed(self, error: str) -> None:
        if self.live is None or self.turn is None:
            return
        self.live.stop()
        self.query_one(SearchPanel).set_status("failed")
        await self.turn.finish(self.live, error=error)
        if self.exchange is not None:
            self.exchange.status, self.exchange.error = "error", error
            if self.live.nodes:
                self.exchange.runs, self.exchange.partial = [self.live.snapshot()], True
        self.notify(error, title="Search failed", severity="error", timeout=10)

    def _end_run(self) -> None:
        if self._ticker is not None and self.runs.get("search") is None:
            self._ticker.stop()
            self._ticker = None
        self.query_one(SearchPanel).stats.refresh_stats()
        self._save()
        self.query_one("#turns", VerticalScroll).scroll_end(animate=False)

    def _save(self) -> None:
        self._last_save = time.monotonic()
        if self.conversation is not None:
            self.services.save_conversation(self.conversation)

    # ---------------------------------------------------------- baseline ---
    def action_baseline(self) -> None:
        """Time `ar` (the large model alone) on the shown question: the speed-up becomes measured."""
        live = self.query_one(SearchPanel).live
        if self.running:
            self.notify("A search is running — Esc cancels it.", severity="warning")
            return
        if live is None or not live.done or not live.question:
            self.notify("Ask a question first; Ctrl+B then times the large model alone on it.")
            return
        if self.start_baseline(live.question) is not None:
            self.notify("Running the large model alone (ar) on this question to measure the speed-up…")

    def start_baseline(self, question: str) -> Run | None:
        """An `ar` run on ``question``: a run of its own, independent of the question's search."""
        settings = self.services.settings
        models = resolve_models(settings)
        problem = missing_message(models, "ar")
        if problem:
            self.notify(problem, title="Models missing", severity="error", timeout=8)
            return None
        self.query_one(SearchPanel).set_status("baseline: running ar…")
        pool = self.services.pool
        # Cold: the search just read this question, and ar must not be timed on its cached prompt.
        return self.runs.start("baseline", lambda run: run_search_job(pool, models, settings, question, "ar", run.id,
                                                                      run.token, self.post_message, cold=True))

    def _baseline_ended(self, message: RunEnded) -> None:
        panel = self.query_one(SearchPanel)
        if isinstance(message, SearchFailed):
            panel.set_status("baseline failed")
            self.notify(message.error, title="Baseline failed", severity="error", timeout=10)
            return
        assert isinstance(message, SearchCompleted)
        result = message.result
        if result.cancelled:
            panel.set_status("baseline cancelled")
            return
        question = result.question.strip()
        self.services.baselines[question] = result.stats.wall_seconds
        panel.set_status(f"baseline: ar took {result.stats.wall_seconds:.2f} s")
        if panel.live is not None and panel.live.question.strip() == question:
            panel.stats.baseline_seconds = result.stats.wall_seconds
        if self.conversation is not None:  # kept with the exchange, before its own run
            for ex in reversed(self.conversation.exchanges):
                if ex.question.strip() == question:
                    ex.runs.insert(0, result)
                    if ex.stats is not None and ex.stats.wall_seconds > 0:  # saved beside its prediction
                        ex.stats.measured_speedup = result.stats.wall_seconds / ex.stats.wall_seconds
                    break

    # ----------------------------------------------------------- actions ---
    def action_cancel(self) -> None:
        if not self.runs.cancel():
            return
        self.query_one(SearchPanel).set_status("cancelling…")
        self.notify("Cancelling: the search stops after the current step; the tree so far stays.")

    async def action_new_conversation(self) -> None:
        if self.running:
            self.notify("A search is running — Esc cancels it first.", severity="warning")
            return
        self.conversation, self.exchange, self.live, self.turn = None, None, None, None
        turns = self.query_one("#turns", VerticalScroll)
        await turns.remove_children()
        await turns.mount(Static(Text(WELCOME), id="welcome"))
        self.query_one(SearchPanel).show(None)
        self.query_one(SearchPanel).set_status("")
        self.query_one("#question").focus()

    def action_focus_tree(self) -> None:
        self.query_one(SearchPanel).tree.focus()

    def action_focus_input(self) -> None:
        self.query_one("#question").focus()

    @on(ChatTurn.Chosen)
    def _turn_chosen(self, message: ChatTurn.Chosen) -> None:
        turn = message.turn
        if turn.live is not None:
            self.query_one(SearchPanel).show(turn.live, self.services.baseline_for(turn.question))

    # ----------------------------------------------------------- history ---
    async def open_conversation(self, conv: Conversation) -> None:
        """Show a saved conversation; new questions continue it."""
        if self.running:
            self.notify("A search is running — Esc cancels it first.", severity="warning")
            return
        self.conversation, self.exchange = conv, None
        turns = self.query_one("#turns", VerticalScroll)
        await turns.remove_children()
        last_live: LiveSearch | None = None
        for ex in conv.exchanges:
            turn = ChatTurn(ex.question)
            await turns.mount(turn)
            if ex.runs:
                live = LiveSearch.from_result(ex.runs[-1], partial=ex.partial)
                result = None if ex.partial else ex.runs[-1]
                await turn.finish(live, result, ex.error if result is None else None)
                if result is None and ex.error is None:
                    turn.set_status(f"interrupted ({ex.status}): the tree so far is kept")
                last_live = live
                # an `ar` run before the last one (race, Ctrl+B) is this question's measured baseline
                ar = next((r for r in ex.runs[:-1] if r.method == "ar" and not r.cancelled), None)
                if ar is not None:
                    self.services.baselines.setdefault(ex.question.strip(), ar.stats.wall_seconds)
            elif ex.mode == "tutor":
                await turn.show_tutoring(ex.tutor)
            elif ex.error:
                await turn.finish(LiveSearch(ex.question), error=ex.error)
            else:
                turn.set_status(ex.status)
        self.live, self.turn = last_live, None
        panel = self.query_one(SearchPanel)
        panel.show(last_live, self.services.baseline_for(last_live.question) if last_live else None)
        panel.set_status("from history" if last_live else "")
        turns.scroll_end(animate=False)

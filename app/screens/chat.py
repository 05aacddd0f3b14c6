"""The chat: ask a question, watch the tree grow, read the answer."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Static

from specsearch.core.events import CancelToken
from specsearch.core.tree import SearchResult

from ..history import Conversation, Exchange
from ..live import LiveSearch, result_from_dict
from ..messages import SearchCompleted, SearchEvents, SearchFailed, SearchStatus
from ..search_worker import run_search_job
from ..settings import ResolvedModels, Settings, missing_message, resolve_models
from ..widgets.chat_turn import ChatTurn
from ..widgets.question_input import QuestionInput
from ..widgets.search_panel import SearchPanel

if TYPE_CHECKING:
    from ..app import SpecSearchApp

WELCOME = (
    "Type a math question below and press Enter. The small model drafts each reasoning step, "
    "the reward model scores it, and the large model rewrites only the steps scoring below β. "
    "Esc cancels a running search (the tree so far stays)."
)
SAVE_EVERY = 2.0  # seconds between history saves while a search runs


class ChatScreen(Screen):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+n", "new_conversation", "New"),
        Binding("ctrl+t", "focus_tree", "Tree"),
        Binding("ctrl+b", "baseline", "Baseline (ar)"),
        Binding("ctrl+l", "focus_input", "Input", show=False),
    ]

    app: "SpecSearchApp"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conversation: Conversation | None = None
        self.exchange: Exchange | None = None
        self.run_id: int | None = None
        self.cancel_token: CancelToken | None = None
        self.live: LiveSearch | None = None
        self.turn: ChatTurn | None = None
        self._ticker: Timer | None = None
        self._last_save = 0.0
        self.baseline_run_id: int | None = None  # an `ar` run timing the last question

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="chat-main"):
            with Vertical(id="chat-column"):
                with VerticalScroll(id="turns"):
                    yield Static(Text(WELCOME), id="welcome")
                yield QuestionInput("Ask a math question…", id="question", history=self.app.question_history)
            yield SearchPanel(id="panel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "chat"
        self.query_one("#question", QuestionInput).border_title = "Question (Enter sends, Ctrl+J new line, ↑ history)"
        self.query_one("#question").focus()

    # ------------------------------------------------------------- state ---
    @property
    def running(self) -> bool:
        return self.cancel_token is not None

    def baseline_for(self, question: str) -> float | None:
        return self.app.baselines.get(question.strip())

    # ------------------------------------------------------------ asking ---
    @on(QuestionInput.Submitted, "#question")
    async def _submitted(self, event: QuestionInput.Submitted) -> None:
        await self.ask(event.text)

    async def ask(self, question: str) -> None:
        if self.running:
            self.notify("A search is running — Esc cancels it.", severity="warning")
            return
        settings = self.app.settings
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
        self.app.save_conversation(self.conversation)

        self.run_id, self.cancel_token = self.app.new_run()
        self.turn = ChatTurn(question, self.run_id)
        await turns.mount(self.turn)
        turns.scroll_end(animate=False)
        self.live = LiveSearch(question, settings.method)
        self.live.config = settings.search_config().to_dict()
        panel = self.query_one(SearchPanel)
        panel.show(self.live, self.baseline_for(question))
        panel.set_status("starting…")
        self.turn.set_status("starting…")
        self._ticker = self.set_interval(0.5, self._tick)
        self.search(models, settings, question, self.run_id, self.cancel_token)

    @work(thread=True, exclusive=True, group="search")
    def search(self, models: ResolvedModels, settings: Settings, question: str, run_id: int, cancel: CancelToken) -> None:
        run_search_job(self.app.pool, models, settings, question, settings.method, run_id, cancel, self.post_message)

    def _tick(self) -> None:
        if self.live is None or self.turn is None or not self.running or self.live.done:
            return
        self.query_one(SearchPanel).stats.refresh_stats()
        step = len(self.live.steps)
        cancelling = " — cancelling after this step" if self.cancel_token and self.cancel_token.cancelled else ""
        self.turn.set_status(f"{self.query_one(SearchPanel).status or 'searching…'} step {step} · "
                             f"{self.live.elapsed:.1f} s{cancelling}")

    # ---------------------------------------------------------- messages ---
    @on(SearchStatus)
    def _status(self, message: SearchStatus) -> None:
        if message.run_id == self.baseline_run_id:
            self.query_one(SearchPanel).set_status(f"baseline: {message.text}")
        elif message.run_id == self.run_id:
            self.query_one(SearchPanel).set_status(message.text)
            self._tick()

    @on(SearchEvents)
    async def _events(self, message: SearchEvents) -> None:
        if message.run_id != self.run_id or self.live is None or self.turn is None:
            return
        self.live.apply(message.events)
        self.query_one(SearchPanel).sync()
        await self.turn.stream(self.live)
        if time.monotonic() - self._last_save > SAVE_EVERY and self.exchange is not None and not self.live.done:
            self.exchange.runs = [self.live.to_record()]
            self._save()

    @on(SearchCompleted)
    async def _completed(self, message: SearchCompleted) -> None:
        if message.run_id == self.baseline_run_id:
            self._baseline_done(message.result)
            return
        if message.run_id != self.run_id or self.live is None or self.turn is None:
            return
        result = message.result
        if self.live.result is not result:
            self.live.finish(result)
        panel = self.query_one(SearchPanel)
        panel.sync()
        panel.set_status("cancelled" if result.cancelled else "done")
        await self.turn.finish(self.live, result)
        if self.exchange is not None:
            self.exchange.runs = [result.to_dict()]
            self.exchange.answer = result.answer
            self.exchange.stats = result.stats.to_dict()
            self.exchange.status = "cancelled" if result.cancelled else "done"
        self._end_run()

    @on(SearchFailed)
    async def _failed(self, message: SearchFailed) -> None:
        if message.run_id == self.baseline_run_id:
            self.baseline_run_id = None
            self.query_one(SearchPanel).set_status("baseline failed")
            self.notify(message.error, title="Baseline failed", severity="error", timeout=10)
            self._end_run()
            return
        if message.run_id != self.run_id or self.live is None or self.turn is None:
            return
        self.live.stop()
        self.query_one(SearchPanel).set_status("failed")
        await self.turn.finish(self.live, error=message.error)
        if self.exchange is not None:
            self.exchange.status, self.exchange.error = "error", message.error
            if self.live.nodes:
                self.exchange.runs = [self.live.to_record()]
        self.notify(message.error, title="Search failed", severity="error", timeout=10)
        self._end_run()

    def _end_run(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self.query_one(SearchPanel).stats.refresh_stats()
        self._save()
        self.app.forget_run(self.cancel_token)
        self.cancel_token = None
        self.query_one("#turns", VerticalScroll).scroll_end(animate=False)

    def _save(self) -> None:
        self._last_save = time.monotonic()
        if self.conversation is not None:
            self.app.save_conversation(self.conversation)

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
        settings = self.app.settings
        models = resolve_models(settings)
        problem = missing_message(models, "ar")
        if problem:
            self.notify(problem, title="Models missing", severity="error", timeout=8)
            return
        self.baseline_run_id, self.cancel_token = self.app.new_run()
        self.query_one(SearchPanel).set_status("baseline: running ar…")
        self.notify("Running the large model alone (ar) on this question to measure the speed-up…")
        self.baseline(models, settings, live.question, self.baseline_run_id, self.cancel_token)

    @work(thread=True, exclusive=True, group="search")
    def baseline(self, models: ResolvedModels, settings: Settings, question: str, run_id: int,
                 cancel: CancelToken) -> None:
        run_search_job(self.app.pool, models, settings, question, "ar", run_id, cancel, self.post_message)

    def _baseline_done(self, result: SearchResult) -> None:
        self.baseline_run_id = None
        panel = self.query_one(SearchPanel)
        if result.cancelled:
            panel.set_status("baseline cancelled")
        else:
            question = result.question.strip()
            self.app.baselines[question] = result.stats.wall_seconds
            panel.set_status(f"baseline: ar took {result.stats.wall_seconds:.2f} s")
            if panel.live is not None and panel.live.question.strip() == question:
                panel.stats.baseline_seconds = result.stats.wall_seconds
            if self.conversation is not None:  # kept with the exchange, before its own run
                for ex in reversed(self.conversation.exchanges):
                    if ex.question.strip() == question:
                        ex.runs.insert(0, result.to_dict())
                        break
        self._end_run()

    # ----------------------------------------------------------- actions ---
    def action_cancel(self) -> None:
        if self.cancel_token is None:
            return
        self.cancel_token.cancel()
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
            self.query_one(SearchPanel).show(turn.live, self.baseline_for(turn.question))

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
                record = ex.runs[-1]
                live = LiveSearch.from_record(record)
                result = None if record.get("partial") else result_from_dict(record)
                await turn.finish(live, result, ex.error if result is None else None)
                if result is None and ex.error is None:
                    turn.set_status(f"interrupted ({ex.status}): the tree so far is kept")
                last_live = live
                # an `ar` run before the last one (race, Ctrl+B) is this question's measured baseline
                ar = next((r for r in ex.runs[:-1] if r.get("method") == "ar" and not r.get("cancelled")), None)
                if ar is not None:
                    self.app.baselines.setdefault(ex.question.strip(), ar["stats"]["wall_seconds"])
            elif ex.mode == "tutor":
                await turn.show_tutoring(ex.tutor)
            elif ex.error:
                await turn.finish(LiveSearch(ex.question), error=ex.error)
            else:
                turn.set_status(ex.status)
        self.live, self.turn = last_live, None
        panel = self.query_one(SearchPanel)
        panel.show(last_live, self.baseline_for(last_live.question) if last_live else None)
        panel.set_status("from history" if last_live else "")
        turns.scroll_end(animate=False)

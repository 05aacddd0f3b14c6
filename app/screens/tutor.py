"""Tutoring: the learner works a problem; hints come one step at a time
(Solver.next_step), the learner's steps are judged by the reward model
(Solver.judge_step) and answers checked for equivalence (core.answers).

A step with wrong arithmetic is rejected at once, without a model (the
session says which equation is off).  One model job runs at a time, as a run
(app/runs.py) ending with one message (HintReady, StepJudged, ReferenceReady
or TutorFailed); a step, hint or answer asked for meanwhile waits in a queue
(shown in the status line) and runs when the job is done -- nothing typed is
dropped.  Esc abandons the job: the run is cancelled and its answer ignored.
"""

from __future__ import annotations

import random
from typing import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Markdown, Static

from ..history import Conversation, Exchange
from ..messages import HintReady, ReferenceReady, RunEnded, StepJudged, TutorFailed
from ..mathtext import readable
from ..runs import Run, RunController
from ..search_worker import describe_error
from ..services import AppServices
from ..settings import ResolvedModels, missing_message, resolve_models
from ..tutor import TutorSession, practice_problem
from ..widgets.question_input import QuestionInput

INTRO = ("Tutoring: type a math question you want to practise (or press Ctrl+O for a practice problem). "
         "Then write your solution one step at a time: Enter checks a step, Ctrl+R checks a final answer, "
         "Ctrl+G gives you the next step as a hint.")


class TutorScreen(Screen):
    BINDINGS = [
        Binding("ctrl+g", "hint", "Hint"),
        Binding("ctrl+r", "check_answer", "Check answer"),
        Binding("ctrl+o", "practice", "Practice"),
        Binding("ctrl+n", "new_problem", "New"),
        Binding("escape", "cancel", "Stop waiting", show=False),
    ]
    DEFAULT_CSS = """
    TutorScreen #tutor-problem { height: auto; max-height: 12; border-bottom: solid $primary-muted; }
    TutorScreen #tutor-log { height: 1fr; padding: 0 1; }
    TutorScreen #tutor-log > Static { margin-bottom: 1; }
    TutorScreen #tutor-log > .hint { color: $accent; }
    TutorScreen #tutor-log > .ok { color: $success; }
    TutorScreen #tutor-log > .bad { color: $warning; }
    TutorScreen #tutor-log > .learner { text-style: bold; }
    TutorScreen #tutor-status { height: 1; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, services: AppServices, **kwargs) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.runs = RunController(self, services.runs)
        self.session: TutorSession | None = None
        self.conversation: Conversation | None = None
        self.exchange: Exchange | None = None
        self.job: Run | None = None  # the model job running now
        self._pending_answer: str | None = None
        self._rng = random.Random()
        self.activity = ""  # what the running job does ("checking your step…")
        self.queue: list[tuple[str, str]] = []  # (kind, text) asked for while busy: step, hint, answer

    def compose(self) -> ComposeResult:
        yield Header()
        yield Markdown(INTRO, id="tutor-problem")
        yield VerticalScroll(id="tutor-log")
        yield Static("", id="tutor-status")
        yield QuestionInput("Your question, then your steps…", id="tutor-input", history=[])
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "tutoring"
        self._rng.seed(self.services.settings.seed)
        self._set_prompt()
        self.query_one(QuestionInput).focus()

    # ------------------------------------------------------------ helpers ---
    def _set_prompt(self) -> None:
        box = self.query_one(QuestionInput)
        box.border_title = ("Your step (Enter checks it · Ctrl+R checks an answer · Ctrl+G hint)"
                            if self.session else "Question to practise (Enter starts · Ctrl+O practice problem)")

    def say(self, text: str, kind: str = "") -> None:
        log = self.query_one("#tutor-log", VerticalScroll)
        log.mount(Static(Text(text), classes=kind))
        log.scroll_end(animate=False)

    def busy(self, text: str) -> None:
        self.activity = text
        self._show_status()

    def _show_status(self) -> None:
        text = self.activity
        if self.queue:
            waiting = ", ".join({"step": "your step", "hint": "a hint", "answer": "your answer"}[k]
                                for k, _ in self.queue)
            text += f" · next: {waiting}"
        self.query_one("#tutor-status", Static).update(Text(text))

    @property
    def waiting(self) -> bool:
        return self.job is not None

    def _models(self, judge_only: bool = False) -> ResolvedModels | None:
        """The models for a hint (the method's) or for judging a step (the reward model only)."""
        settings = self.services.settings
        models = resolve_models(settings)
        if judge_only:
            problem = None if models.specs["prm"] else (
                "No reward model configured (nor a small or large model to judge with). "
                "Pick one in the model manager (F6) or Settings (F7).")
        else:
            problem = missing_message(models, settings.method)
        if problem:
            self.say("⚠ " + problem, "bad")
            self.notify(problem, title="Models missing", severity="error")
            return None
        return models

    def _start_job(self, purpose: str, activity: str, job: Callable[[Run], RunEnded]) -> None:
        """Run ``job`` on the models in a worker; it returns the run's one terminal message
        (an exception becomes TutorFailed)."""
        def work(run: Run) -> None:
            try:
                message = job(run)
            except Exception as exc:  # shown to the learner, the screen keeps working
                message = TutorFailed(run.id, describe_error(exc))
            self.post_message(message)

        self.busy(activity)
        self.job = self.runs.start(purpose, work)

    def _job_done(self) -> None:
        self.job = None
        self.busy("")
        self._save()
        self._run_queue()

    # ------------------------------------------------------------- queue ---
    def _enqueue(self, kind: str, text: str = "") -> None:
        """Keep what the learner asked for while a job runs; say so (a toast and the status line)."""
        if kind == "hint" and ("hint", "") in self.queue:
            self.notify("A hint is already on its way.")
            return
        self.queue.append((kind, text))
        doing = self.activity.rstrip("…") or "this"
        what = {"step": "check that step", "hint": "give you a hint", "answer": "check that answer"}[kind]
        self.notify(f"Got it — I'll {what} as soon as I've finished {doing}.", title="One moment")
        self._show_status()

    def _run_queue(self) -> None:
        """Start what was asked for while busy, in order, until one of them needs a model job."""
        while self.queue and not self.waiting and self.session is not None:
            kind, text = self.queue.pop(0)
            if kind == "step":
                self.check_step(text)
            elif kind == "hint":
                self.action_hint()
            else:
                self._check_answer_text(text)
        self._show_status()

    def _drop_queue(self, why: str) -> None:
        if self.queue:
            n = len(self.queue)
            self.queue.clear()
            self.say(f"{why}: dropped {n} waiting request{'s' if n > 1 else ''}.", "bad")
            self._show_status()

    def _abandon_job(self) -> None:
        """Stop waiting for the running job (its late result is ignored)."""
        if self.job is not None:
            self.runs.abandon(self.job)
            self.job = None
            self._pending_answer = None
            self.busy("")

    def _save(self) -> None:
        if self.exchange is not None and self.session is not None and self.conversation is not None:
            self.exchange.tutor = list(self.session.turns)
            self.services.save_conversation(self.conversation)

    # ----------------------------------------------------------- problem ---
    async def set_problem(self, question: str, reference: str | None = None, source: str = "your question") -> None:
        self._drop_queue("New problem")
        self._abandon_job()
        self.session = TutorSession(question, reference, source=source)
        self.conversation = Conversation.new()
        self.exchange = Exchange(question, "tutor", self.services.settings.to_dict(), status="done")
        self.conversation.exchanges.append(self.exchange)
        await self.query_one("#tutor-problem", Markdown).update(
            f"**Problem** ({source}{', answer known' if reference else ''}):\n\n{readable(question)}")
        await self.query_one("#tutor-log", VerticalScroll).remove_children()
        self.say("Let's work through it together. Write your first step, or press Ctrl+G for a hint.")
        self._set_prompt()
        self._save()

    @on(QuestionInput.Submitted, "#tutor-input")
    async def _submitted(self, event: QuestionInput.Submitted) -> None:
        if self.session is None:
            await self.set_problem(event.text)
        else:
            self.check_step(event.text)

    async def action_practice(self) -> None:
        try:
            question, answer, source = practice_problem(self._rng)
        except Exception as exc:  # a damaged install: say so, keep going
            self.notify(f"No practice problems: {exc}", severity="error")
            return
        await self.set_problem(question, answer, source)

    async def action_new_problem(self) -> None:
        self._drop_queue("New problem")
        self._abandon_job()
        self.session, self.exchange, self.conversation = None, None, None
        await self.query_one("#tutor-problem", Markdown).update(INTRO)
        await self.query_one("#tutor-log", VerticalScroll).remove_children()
        self._set_prompt()

    def action_cancel(self) -> None:
        if self.job is not None:
            self._drop_queue("Stopped")
            self._abandon_job()  # whatever comes back is ignored
            self._save()
            self.say("Stopped waiting.", "bad")

    # -------------------------------------------------------------- hint ---
    def action_hint(self) -> None:
        if self.session is None:
            self.notify("Type a question first (or Ctrl+O for a practice problem).")
            return
        if self.waiting:
            self._enqueue("hint")
            return
        models = self._models()
        if models is None:
            return
        settings, pool = self.services.settings, self.services.pool
        question, steps = self.session.question, list(self.session.steps)
        self._start_job("hint", "thinking of a hint…", lambda run: HintReady(
            run.id, pool.for_settings(models, settings).next_step(question, steps, settings.search_config())))

    @on(RunEnded)
    def _job_ended(self, message: RunEnded) -> None:
        if self.runs.end(message) is None:
            return  # an abandoned job
        if self.session is None:
            self._job_done()
            return
        if isinstance(message, HintReady):
            self._hint(message)
        elif isinstance(message, StepJudged):
            self._judged(message)
        elif isinstance(message, ReferenceReady):
            self._reference(message)
        elif isinstance(message, TutorFailed):
            self._failed(message)

    def _hint(self, message: HintReady) -> None:
        assert self.session is not None
        verdict = self.session.add_hint(message.text)
        if verdict.ok:
            self.say(f"💡 Hint (step {len(self.session.steps)}): {readable(verdict.message)}", "hint")
        else:
            self.say(verdict.message, "hint" if verdict.ok is None else "bad")
        self._job_done()

    # -------------------------------------------------------------- step ---
    def check_step(self, step: str) -> None:
        if self.session is None:
            return
        if self.waiting:
            self._enqueue("step", step)
            return
        self.say(f"You: {step}", "learner")
        wrong = self.session.check_arithmetic(step)
        if wrong is not None:  # no model needed to see that 20 - 12 is not 9
            self.say(wrong.message, "bad")
            self._save()
            return
        models = self._models(judge_only=True)
        if models is None:
            return
        settings, pool = self.services.settings, self.services.pool
        question, steps = self.session.question, list(self.session.steps)
        self._start_job("judge", "checking your step…", lambda run: StepJudged(
            run.id, step, pool.for_settings(models, settings).judge_step(question, steps + [step])))

    def _judged(self, message: StepJudged) -> None:
        assert self.session is not None
        verdict = self.session.judge_step(message.step, message.score)
        self.say(verdict.message, "ok" if verdict.ok else "bad")
        self._job_done()

    # ------------------------------------------------------------ answer ---
    def action_check_answer(self) -> None:
        if self.session is None:
            self.notify("Type a question first (or Ctrl+O for a practice problem).")
            return
        box = self.query_one(QuestionInput)
        text = box.text.strip()
        if not text:
            self.notify("Type your answer in the box first, then press Ctrl+R.")
            return
        box.clear()
        if self.waiting:
            self._enqueue("answer", text)
            return
        self._check_answer_text(text)

    def _check_answer_text(self, text: str) -> None:
        assert self.session is not None
        self.say(f"Your answer: {text}", "learner")
        if self.session.reference is not None:
            self._show_answer_verdict(text)
            return
        models = self._models()
        if models is None:
            return
        self._pending_answer = text
        settings, pool, question = self.services.settings, self.services.pool, self.session.question
        self._start_job("reference", "working out the answer myself to check yours…", lambda run: ReferenceReady(
            run.id, pool.for_settings(models, settings).solve(question, settings.search_config(), cancel=run.token).answer))

    def _reference(self, message: ReferenceReady) -> None:
        assert self.session is not None
        self.session.reference, self.session.reference_is_model = message.answer, True
        if self._pending_answer is not None:
            self._show_answer_verdict(self._pending_answer)
            self._pending_answer = None
        self._job_done()

    def _show_answer_verdict(self, text: str) -> None:
        assert self.session is not None
        verdict = self.session.check_answer(text)
        self.say(verdict.message, "ok" if verdict.ok else "bad")
        self._save()

    def _failed(self, message: TutorFailed) -> None:
        self.say(f"⚠ Sorry, something went wrong: {message.error}", "bad")
        self._job_done()

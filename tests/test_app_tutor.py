"""Tutoring: hint flow (Solver.next_step), step judging (Solver.judge_step),
answer checking (core.answers.is_equivalent), the exact arithmetic check, and
requests made while the tutor is busy, on the real core with tiny models."""

from __future__ import annotations

import contextlib

import pytest
from app_fixtures import app_models, async_test, make_app, saved, type_text, wait_until  # noqa: F401

from specsearch.app.screens.tutor import TutorScreen
from specsearch.app.settings import resolve_models
from specsearch.app.tutor import STEP_OK, TutorSession
from specsearch.app.widgets.question_input import QuestionInput

QUESTION = "What is 12 + 30?"
PENS = ("A shop sells pens at 3 dollars each. Tom buys 4 pens and pays with a 20 dollar bill. "
        "How much change does he get?")
RIGHT_STEP = "4 pens cost 4 * 3 = 12 dollars."
WRONG_STEP = "So the change is 20 - 12 = 9 dollars."


def log_text(screen: TutorScreen) -> str:
    return "\n".join(str(w.render()) for w in screen.query("#tutor-log > Static"))


async def open_tutor(pilot) -> TutorScreen:
    await pilot.press("f4")
    await wait_until(pilot, lambda: pilot.app.current_mode == "tutor")
    screen = pilot.app.screen
    assert isinstance(screen, TutorScreen)
    screen.query_one(QuestionInput).focus()
    return screen


async def start_session(pilot, question: str) -> TutorScreen:
    """Open the tutor and ask ``question``; returns once the session exists."""
    screen = await open_tutor(pilot)
    await type_text(pilot, question)
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.session is not None)
    return screen


def app_solver(app):
    """The app's own Solver for its current settings (the one the tutor used)."""
    return app.services.pool.for_settings(resolve_models(app.settings), app.settings)


@contextlib.contextmanager
def solver_busy(app):
    """Keep the app's Solver occupied (it serves one call at a time), so a tutor job that needs
    it stays in flight until the block ends: the tutor is deterministically busy."""
    lock = app_solver(app)._lock
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def status_text(screen: TutorScreen) -> str:
    return str(screen.query_one("#tutor-status").render())


class TestHints:
    @async_test
    async def test_hint_is_the_solvers_next_step_and_extends_the_working(self, app_models):
        app = make_app(app_models, batch_invariant=True)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await start_session(pilot, QUESTION)
            assert screen.session.question == QUESTION

            await pilot.press("ctrl+g")
            await wait_until(pilot, lambda: screen.session.turns and not screen.waiting)
            assert screen.session.turns[0]["kind"] == "hint"
            # the hint is exactly what the core's Solver.next_step gives for this question
            settings = app.settings
            solver = app_solver(app)
            expected = solver.next_step(QUESTION, [], settings.search_config()).strip()
            assert screen.session.turns[0]["text"] == expected
            if expected:
                assert screen.session.steps == [expected]
                assert "Hint (step 1)" in log_text(screen)

            # a second hint continues after the first
            await pilot.press("ctrl+g")
            await wait_until(pilot, lambda: len(screen.session.turns) == 2 and not screen.waiting)
            expected2 = solver.next_step(QUESTION, screen.session.steps[:1], settings.search_config()).strip()
            assert screen.session.turns[1]["text"] == expected2

            # saved to history as a tutoring exchange
            await wait_until(pilot, saved(app))
            [summary] = app.services.history.list()
            exchange = app.services.history.load(summary.id).exchanges[0]
            assert exchange.mode == "tutor" and [t["kind"] for t in exchange.tutor] == ["hint", "hint"]


class TestChecking:
    @async_test
    async def test_step_is_judged_by_the_reward_model(self, app_models):
        app = make_app(app_models, batch_invariant=True)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await start_session(pilot, QUESTION)
            await type_text(pilot, "12 + 30 = 42")
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.session.turns and not screen.waiting)
            turn = screen.session.turns[0]
            assert turn["kind"] == "step" and 0.0 <= turn["score"] <= 1.0
            solver = app_solver(app)
            assert turn["score"] == pytest.approx(solver.judge_step(QUESTION, ["12 + 30 = 42"]), abs=1e-6)
            assert turn["ok"] == (turn["score"] >= STEP_OK)
            assert f"reward model: {turn['score']:.2f}" in log_text(screen)

    @async_test
    async def test_practice_problem_answer_checked_kindly(self, app_models):
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await open_tutor(pilot)
            await pilot.press("ctrl+o")
            await wait_until(pilot, lambda: screen.session is not None)
            reference = screen.session.reference
            assert reference and screen.session.source.startswith("gsm8k")
            await type_text(pilot, f"The answer is {reference}.")
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: screen.session.turns)
            assert screen.session.turns[-1]["ok"] is True
            assert "Well done" in log_text(screen)
            await type_text(pilot, "-1")
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: len(screen.session.turns) == 2)
            assert screen.session.turns[-1]["ok"] is False
            assert "Not quite" in log_text(screen)

    @async_test
    async def test_own_question_answer_checked_against_the_models_solution(self, app_models):
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await start_session(pilot, QUESTION)
            await type_text(pilot, "42")
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: screen.session.turns and not screen.waiting, timeout=60)
            verdict = screen.session.turns[-1]
            assert verdict["kind"] == "answer"
            # the tiny models rarely produce a final answer: either way the learner is told kindly
            if screen.session.reference is None:
                assert verdict["ok"] is None and "can't check yours" in verdict["verdict"]
            else:
                assert "model's own solution" in verdict["verdict"]


class TestArithmetic:
    @async_test
    async def test_wrong_equation_is_named_and_kept_out_of_the_working(self, app_models):
        app = make_app(app_models, batch_invariant=True)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await start_session(pilot, PENS)
            solver = app_solver(app)

            # a right equation goes to the reward model as before
            await type_text(pilot, RIGHT_STEP)
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.session.turns and not screen.waiting)
            first = screen.session.turns[0]
            assert "arithmetic" not in first
            assert first["score"] == pytest.approx(solver.judge_step(PENS, [RIGHT_STEP]), abs=1e-6)
            working = [RIGHT_STEP] if first["ok"] else []
            assert screen.session.steps == working

            # a wrong one is rejected at once, whatever the model would say, and named
            await type_text(pilot, WRONG_STEP)
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(screen.session.turns) == 2)
            second = screen.session.turns[1]
            assert second["ok"] is False and second["arithmetic"] == ["20 − 12 = 8, not 9"]
            assert "✗ 20 − 12 = 8, not 9" in log_text(screen)
            assert screen.session.steps == working and not screen.waiting

            # the next hint continues from the last step judged right
            await pilot.press("ctrl+g")
            await wait_until(pilot, lambda: len(screen.session.turns) == 3 and not screen.waiting)
            expected = solver.next_step(PENS, working, app.settings.search_config()).strip()
            assert screen.session.turns[2]["kind"] == "hint" and screen.session.turns[2]["text"] == expected

            # the reason is saved with the turn
            await wait_until(pilot, saved(app))
            [summary] = app.services.history.list()
            turns_saved = app.services.history.load(summary.id).exchanges[0].tutor
            assert turns_saved[1]["arithmetic"] == ["20 − 12 = 8, not 9"]


@contextlib.asynccontextmanager
async def judging_while_held(pilot, app):
    """The pens session checking RIGHT_STEP while the solver is held: keys pressed now must wait."""
    screen = await start_session(pilot, PENS)
    with solver_busy(app):
        await type_text(pilot, RIGHT_STEP)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.waiting)
        yield screen


class TestBusy:
    @async_test
    async def test_keys_pressed_while_busy_are_queued_and_run_in_order(self, app_models):
        app = make_app(app_models, batch_invariant=True)
        async with app.run_test(size=(140, 45)) as pilot:
            async with judging_while_held(pilot, app) as screen:
                await pilot.press("ctrl+g")
                await pilot.press("ctrl+g")  # one hint is already on its way: not queued twice
                await type_text(pilot, WRONG_STEP)
                await pilot.press("enter")
                await pilot.pause()
                assert screen.queue == [("hint", ""), ("step", WRONG_STEP)]
                assert "checking your step… · next: a hint, your step" in status_text(screen)
                assert screen.session.turns == []  # nothing judged while the solver is held
            await wait_until(pilot, lambda: len(screen.session.turns) == 3 and not screen.waiting)
            turns = screen.session.turns
            assert [t["kind"] for t in turns] == ["step", "hint", "step"]
            assert turns[0]["text"] == RIGHT_STEP and turns[2]["arithmetic"] == ["20 − 12 = 8, not 9"]
            # the hint was made after the first step had been judged (and with its verdict)
            working = [RIGHT_STEP] if turns[0]["ok"] else []
            expected = app_solver(app).next_step(PENS, working, app.settings.search_config()).strip()
            assert turns[1]["text"] == expected
            assert screen.queue == [] and "next:" not in status_text(screen)

    @async_test
    async def test_stopping_says_what_was_dropped(self, app_models):
        app = make_app(app_models, batch_invariant=True)
        async with app.run_test(size=(140, 45)) as pilot:
            async with judging_while_held(pilot, app) as screen:
                await pilot.press("ctrl+g")
                await pilot.press("escape")
                assert not screen.waiting and screen.queue == []
                assert "Stopped: dropped 1 waiting request." in log_text(screen)
                assert "Stopped waiting." in log_text(screen)
            await pilot.pause(0.5)  # the abandoned judgement comes back and is ignored
            assert screen.session.turns == [] and not screen.waiting


class TestSession:
    def test_verdicts(self):
        s = TutorSession("What is 1+1?", "2")
        assert s.check_answer("2").ok is True
        assert s.check_answer("\\boxed{2}").ok is True
        assert s.check_answer("3").ok is False
        ok = s.judge_step("1+1=2", 0.9)
        bad = s.judge_step("1+1=3", 0.1)
        assert ok.ok and not bad.ok and s.steps == ["1+1=2"]
        hint = s.add_hint("  so the answer is 2  ")
        assert hint.ok and hint.message == "so the answer is 2"
        assert s.steps[-1] == "so the answer is 2"
        assert s.add_hint("   ").ok is None and s.steps[-1] == "so the answer is 2"

    def test_wrong_arithmetic_is_never_approved(self):
        s = TutorSession(PENS)
        verdict = s.judge_step(WRONG_STEP, 0.99)  # the reward model liked it
        assert verdict.ok is False and verdict.message.startswith("✗ 20 − 12 = 8, not 9")
        assert s.steps == [] and s.turns[-1]["score"] == 0.99
        assert s.check_arithmetic(RIGHT_STEP) is None
        assert s.check_arithmetic(WRONG_STEP).ok is False and s.steps == []

    def test_a_hint_with_wrong_arithmetic_is_not_added(self):
        s = TutorSession(PENS, steps=[RIGHT_STEP])
        verdict = s.add_hint(WRONG_STEP)
        assert verdict.ok is False and "20 − 12 = 8, not 9" in verdict.message
        assert s.steps == [RIGHT_STEP] and s.turns[-1]["arithmetic"] == ["20 − 12 = 8, not 9"]

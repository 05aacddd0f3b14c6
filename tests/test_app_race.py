"""Race mode: ar then specsearch on the same question, measured speed-up, answer agreement."""

from __future__ import annotations

import threading
import time

import pytest

from app_fixtures import QUESTION, app_models, async_test, make_app, saved, type_text, wait_until  # noqa: F401

from specsearch.app.formatting import speedup_text
from specsearch.app.screens.race import RaceScreen
from specsearch.app.search_worker import EventBatcher
from specsearch.app.widgets.search_panel import SearchPanel
from specsearch.core.events import StepStarted


class TestRace:
    @async_test
    async def test_race_measures_speedup_and_feeds_the_chat_baseline(self, app_models):
        app = make_app(app_models)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("f3")
            await wait_until(pilot, lambda: app.current_mode == "race")
            screen = app.screen
            assert isinstance(screen, RaceScreen)
            screen.query_one("#race-question").focus()
            await type_text(pilot, QUESTION)
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.done and saved(app)(), timeout=60)
            ar, spec = screen.results["ar"], screen.results["specsearch"]
            assert ar.method == "ar" and spec.method == "specsearch"
            assert {n.source for n in ar.nodes} == {"large"}
            # each leg read the question cold: the second did not find it in the first one's cache
            assert ar.steps[0].calls[0]["prefill"] == spec.steps[0].calls[0]["prefill"] > 10
            verdict = str(screen.query_one("#race-verdict").render())
            assert "measured" in verdict and "answers" in verdict
            assert f"ar {ar.stats.wall_seconds:.2f} s" in verdict or f"ar {ar.stats.wall_seconds:.1f} s" in verdict
            # both trees are on screen
            assert set(screen.query_one("#panel-ar", SearchPanel).tree.labels()) == {n.id for n in ar.nodes}
            assert set(screen.query_one("#panel-specsearch", SearchPanel).tree.labels()) == {n.id for n in spec.nodes}
            # the ar time is now the chat's measured baseline for this question
            assert app.services.baselines[QUESTION] == ar.stats.wall_seconds
            assert "measured" in speedup_text("specsearch", spec.stats, app.services.baselines[QUESTION])
            [summary] = app.services.history.list()
            exchange = app.services.history.load(summary.id).exchanges[0]
            assert exchange.mode == "race" and [r.method for r in exchange.runs] == ["ar", "specsearch"]
            # the saved search keeps the measured speed-up beside the cost model's prediction
            saved_stats = exchange.runs[1].stats
            assert saved_stats.measured_speedup == pytest.approx(ar.stats.wall_seconds / spec.stats.wall_seconds)
            assert saved_stats.predicted_speedup is not None


class TestBatching:
    def test_hundreds_of_events_arrive_in_few_batches_in_order(self):
        batches: list[tuple] = []
        done = threading.Event()

        def deliver(batch):
            batches.append(batch)
            if batch[-1] is events[-1]:
                done.set()

        batcher = EventBatcher(deliver, interval=0.05)
        events = [StepStarted(i, (), None) for i in range(2000)]
        t0 = time.monotonic()
        for e in events:
            batcher.push(e)
        assert done.wait(2)  # the last event arrives within an interval, without close()
        flat = [e for b in batches for e in b]
        assert flat == events
        elapsed = time.monotonic() - t0
        assert len(batches) <= 2 + elapsed / 0.05  # at most one batch per interval (+ first and final)

    def test_a_lone_event_is_not_held_back(self):
        got = threading.Event()
        batcher = EventBatcher(lambda batch: got.set(), interval=0.05)
        batcher.push(StepStarted(1, (), None))
        batcher.push(StepStarted(2, (), None))  # within the interval: waits for the timer
        assert got.wait(1)
        batcher.close()

"""The run controller (app/runs.py): independent run handles, cancellation through the worker,
one terminal message per run; and the records the app keeps (SearchResult.from_dict, history)."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Callable

from app_fixtures import (  # noqa: F401
    QUESTION, app_models, ask, async_test, finished, make_app, saved, synthetic_result, wait_until,
)
from textual import on
from textual.app import App
from textual.screen import Screen

import specsearch.app.app as app_module
from specsearch.app.app import SpecSearchApp
from specsearch.app.history import Conversation, Exchange, HistoryStore
from specsearch.app.messages import RunEnded, SearchCompleted
from specsearch.app.runs import Run, RunController, RunRegistry
from specsearch.app.settings import resolve_models
from specsearch.core.tree import SearchResult, SearchStats, path_to


class CountingApp(SpecSearchApp):
    """The app, counting every run's terminal messages (they bubble up from the screens)."""

    CSS_PATH = str(Path(app_module.__file__).with_name("app.tcss"))  # relative paths follow the subclass

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ended: list[RunEnded] = []

    @on(RunEnded)
    def _count(self, message: RunEnded) -> None:
        self.ended.append(message)


def app_heard(app: CountingApp, *runs: Run) -> Callable[[], bool]:
    """A wait_until predicate: the terminal messages of ``runs`` have bubbled up to the app
    (the screen handles them first; the app's queue gets them after)."""
    return lambda: {r.id for r in runs} <= {m.run_id for m in app.ended}


def counting_app(models, **overrides) -> CountingApp:
    plain = make_app(models, **overrides)
    return CountingApp(plain.settings_store, pool=plain.services.pool, check_models=False)


@contextlib.contextmanager
def solver_held(app):
    """Hold the app's Solver (it serves one call at a time): runs that need it wait in their worker."""
    lock = app.services.pool.for_settings(resolve_models(app.settings), app.settings)._lock
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextlib.asynccontextmanager
async def search_and_baseline(pilot, app):
    """A search and an ar baseline of the same question, both started while the Solver is held;
    on exit, waits until both have ended, the app heard each, and history is saved."""
    with solver_held(app):
        screen = await ask(pilot, QUESTION)
        search = screen.runs.get("search")
        baseline = screen.start_baseline(QUESTION)
        yield screen, search, baseline
    await wait_until(pilot, lambda: not screen.running and saved(app)() and app_heard(app, search, baseline)())
    await pilot.pause()  # a second terminal message, if any, would arrive now


class TestBaselineAndSearch:
    @async_test
    async def test_a_baseline_started_during_a_search_cannot_cancel_it(self, app_models):
        app = counting_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            async with search_and_baseline(pilot, app) as (screen, search, baseline):
                assert baseline is not None and baseline is not search and baseline.token is not search.token
                baseline.cancel()
                assert baseline.cancelled and not search.cancelled
            # the search ran to its end; the baseline stopped at once, with nothing timed
            assert screen.live.result is not None and not screen.live.result.cancelled
            assert QUESTION not in app.services.baselines
            ended = {m.run_id: m for m in app.ended}
            assert ended[baseline.id].result.cancelled and ended[search.id].result is screen.live.result
            # exactly one terminal message per run
            assert sorted(m.run_id for m in app.ended) == sorted([search.id, baseline.id])

    @async_test
    async def test_cancelling_the_search_leaves_the_baseline_running(self, app_models):
        app = counting_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            async with search_and_baseline(pilot, app) as (screen, search, baseline):
                search.cancel()
                assert search.cancelled and not baseline.cancelled
            assert screen.live.result.cancelled
            assert app.services.baselines[QUESTION] > 0  # the baseline ran to its end and was measured
            counts = [m.run_id for m in app.ended]
            assert counts.count(search.id) == 1 and counts.count(baseline.id) == 1 and len(counts) == 2

    @async_test
    async def test_escape_cancels_the_screens_run_and_it_ends_once(self, app_models):
        app = counting_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            with solver_held(app):
                screen = await ask(pilot, QUESTION)
                search = screen.runs.get("search")
                await pilot.press("escape")
                assert search.cancelled
            await wait_until(pilot, lambda: finished(screen)() and app_heard(app, search)())
            await pilot.pause(0.2)  # time for a second one, were there one
            assert screen.live.result.cancelled and screen.live.result.nodes == []
            assert [m.run_id for m in app.ended] == [search.id]
            assert isinstance(app.ended[0], SearchCompleted)


class ControllerScreen(Screen):
    def __init__(self, registry: RunRegistry) -> None:
        super().__init__()
        self.runs = RunController(self, registry)
        self.ended: list[tuple[RunEnded, Run | None]] = []

    @on(RunEnded)
    def _ended(self, message: RunEnded) -> None:
        self.ended.append((message, self.runs.end(message)))


class ControllerApp(App):
    def __init__(self) -> None:
        super().__init__()
        self.registry = RunRegistry()

    def on_mount(self) -> None:
        self.push_screen(ControllerScreen(self.registry))


class TestRunController:
    @async_test
    async def test_runs_are_independent_and_an_abandoned_run_is_ignored(self):
        app = ControllerApp()
        async with app.run_test() as pilot:
            screen = app.screen
            assert isinstance(screen, ControllerScreen)
            release = threading.Event()

            def work(run: Run) -> None:
                while not (release.is_set() or run.token.cancelled):
                    release.wait(0.01)
                screen.post_message(RunEnded(run.id))

            a, b, c = (screen.runs.start(p, work) for p in ("search", "baseline", "hint"))
            assert len({a.id, b.id, c.id}) == 3 and {r.id for r in app.registry.live()} == {a.id, b.id, c.id}
            assert screen.runs.cancel("baseline") == [b]
            assert b.cancelled and not a.cancelled and not c.cancelled
            screen.runs.abandon(c)  # cancelled, and whatever it still says is ignored
            assert c.cancelled and not a.cancelled
            await wait_until(pilot, lambda: len(screen.ended) == 2)
            assert {(m.run_id, r.id if r else None) for m, r in screen.ended} == {(b.id, b.id), (c.id, None)}
            assert screen.runs.get("search") is a and screen.runs.busy
            release.set()
            await wait_until(pilot, lambda: len(screen.ended) == 3)
            assert not screen.runs.busy and app.registry.live() == []
            assert not a.cancelled

    @async_test
    async def test_quitting_cancels_every_run(self):
        app = ControllerApp()
        seen: list[bool] = []
        async with app.run_test() as pilot:
            screen = app.screen

            def work(run: Run) -> None:
                while not run.token.cancelled:
                    threading.Event().wait(0.01)
                seen.append(True)

            screen.runs.start("search", work)
            await pilot.pause()
            app.registry.cancel_all()
            await wait_until(pilot, lambda: seen)


class TestRecords:
    def test_search_result_round_trips_through_its_dict(self):
        result = synthetic_result()
        result.config["prm"] = {"kind": "judge", "model": "s.gguf", "head": None, "arith_check": True}
        result.nodes[3].flag = "2 + 2 = 4, not 5"
        back = SearchResult.from_dict(json.loads(json.dumps(result.to_dict())))
        assert back == result
        assert max(n.depth for n in back.nodes) == 3
        assert [n.id for n in back.path(back.best_leaf_id)] == [0, 2, 7]
        assert back.stats.thought_acceptance_rate == result.stats.thought_acceptance_rate

    def test_old_records_load_with_defaults(self):
        back = SearchResult.from_dict({"question": "q", "nodes": [], "stats": {"wall_seconds": 2.0, "extra": 1}})
        assert back.method == "" and back.best_leaf_id is None and back.stats == SearchStats(wall_seconds=2.0)

    def test_the_parent_walk_stops_at_a_missing_node(self):
        result = synthetic_result()
        nodes = {n.id: n for n in result.nodes}
        assert [n.id for n in path_to(nodes, 8)] == [0, 5, 8]
        del nodes[0]
        assert [n.id for n in path_to(nodes, 8)] == [5, 8]
        assert path_to(nodes, None) == []

    def test_history_loads_into_search_results(self):
        store = HistoryStore()
        conv = Conversation.new()
        result = synthetic_result()
        conv.exchanges.append(Exchange(result.question, runs=[result], answer=result.answer, stats=result.stats,
                                       status="done"))
        store.save(conv)
        [exchange] = store.load(conv.id).exchanges
        assert isinstance(exchange.runs[0], SearchResult) and exchange.runs[0] == result
        assert exchange.stats == result.stats and not exchange.partial

    def test_a_partial_run_saved_by_an_older_version_is_recognised(self):
        store = HistoryStore()
        record = {**synthetic_result().to_dict(), "best_leaf_id": None, "partial": True}
        data = {"id": "old-1", "created_at": 1.0, "updated_at": 1.0,
                "exchanges": [{"question": "q", "runs": [record], "status": "running"}]}
        store.path("old-1").write_text(json.dumps(data), encoding="utf-8")
        [exchange] = store.load("old-1").exchanges
        assert exchange.partial and exchange.runs[0].best_leaf_id is None

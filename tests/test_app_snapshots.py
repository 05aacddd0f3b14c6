"""Snapshot tests of the main screens at a fixed terminal size.

They render hand-made records (tests/app_fixtures.synthetic_result) so the
pictures do not depend on llama.cpp numerics; the Pilot tests in the other
test_app_*.py files run the real core.  Update with
``python -m pytest tests/test_app_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from app_fixtures import synthetic_result, wait_until

from specsearch.app.app import SpecSearchApp
from specsearch.app.history import Conversation, Exchange, HistoryStore
from specsearch.app.settings import SettingsStore

SIZE = (140, 42)
MODELS = dict(small="/models/qwen2.5-0.5b-instruct-q4_k_m.gguf", large="/models/qwen2.5-1.5b-instruct-q4_k_m.gguf")


@pytest.fixture(autouse=True)
def _fixed_clock_zone(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def make_app() -> SpecSearchApp:
    # model paths that need not exist: nothing is loaded in these tests
    return SpecSearchApp(SettingsStore.load(dict(MODELS), environ={}), check_models=False)


def saved_conversation(question: str | None = None, when: float = 1_750_000_000.0) -> Conversation:
    result = synthetic_result(question) if question else synthetic_result()
    conv = Conversation(f"snap-{int(when)}", when, when)
    conv.exchanges.append(Exchange(result.question, "chat", {}, [result], result.answer,
                                   result.stats, "done", started_at=when))
    return conv


def write_history(*convs: Conversation) -> None:
    import json

    store = HistoryStore()
    for conv in convs:  # written directly: HistoryStore.save would stamp the current time
        store.path(conv.id).write_text(json.dumps(conv.to_dict()), encoding="utf-8")


class TestChatSnapshots:
    def test_empty_chat(self, snap_compare):
        assert snap_compare(make_app(), terminal_size=SIZE)

    def test_reopened_search_with_every_fate(self, snap_compare):
        async def run_before(pilot) -> None:
            await pilot.app.open_conversation(saved_conversation())
            tree = pilot.app.screen.query_one("ReasoningTree")
            tree.focus()
            await wait_until(pilot, lambda: tree.items[3].line >= 0)  # the tree has laid out its lines
            tree.move_cursor(tree.items[3])  # the rejected draft: detail explains why
            await wait_until(pilot, lambda: "#3 ·" in str(pilot.app.screen.query_one("#detail-text").render()))

        assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


class TestOtherScreens:
    def test_settings(self, snap_compare, monkeypatch):
        import specsearch.app.screens.settings as settings_screen

        monkeypatch.setattr(settings_screen, "settings_path", lambda: Path("~/.config/specsearch/settings.json"))
        assert snap_compare(make_app(), press=["f7"], terminal_size=SIZE)

    def test_history(self, snap_compare):
        write_history(saved_conversation(), saved_conversation("What is $2^{10}$?", when=1_750_100_000.0))
        assert snap_compare(make_app(), press=["f5"], terminal_size=SIZE)

    def test_race_ready(self, snap_compare):
        assert snap_compare(make_app(), press=["f3"], terminal_size=SIZE)

    def test_tutor_practice_problem(self, snap_compare):
        async def run_before(pilot) -> None:
            await pilot.press("f4")
            await wait_until(pilot, lambda: pilot.app.current_mode == "tutor")
            await pilot.press("ctrl+o")
            await wait_until(pilot, lambda: pilot.app.screen.session is not None)

        assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)

    def test_model_manager_catalog(self, snap_compare):
        assert snap_compare(make_app(), press=["f6"], terminal_size=SIZE)

"""History: saved as it happens, reopened, deleted, exported (real searches on tiny models)."""

from __future__ import annotations

import json

from app_fixtures import (  # noqa: F401
    QUESTION, app_models, ask, async_test, finished, make_app, synthetic_result, wait_until,
)

from specsearch.app.formatting import node_label
from specsearch.app.history import Conversation, Exchange, HistoryStore, to_markdown
from specsearch.app.screens.chat import ChatScreen
from specsearch.app.widgets.chat_turn import ChatTurn
from specsearch.app.widgets.search_panel import SearchPanel
from specsearch.models.locations import data_dir, history_dir


async def solve_in_chat(pilot, question: str):
    screen = await ask(pilot, question)
    await wait_until(pilot, finished(screen))
    return screen.live.result


class TestReopen:
    @async_test
    async def test_reopen_shows_the_same_tree_and_answer(self, app_models):
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            result = await solve_in_chat(pilot, QUESTION)
            labels_before = app.screen.query_one(SearchPanel).tree.labels()
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: not app.screen.query(ChatTurn))
            assert app.screen.query_one(SearchPanel).tree.labels() == {}

            await pilot.press("f5")
            await wait_until(pilot, lambda: app.current_mode == "history")
            table = app.screen.query_one("DataTable")
            assert table.row_count == 1
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.current_mode == "chat" and app.screen.query(ChatTurn))
            chat = app.screen
            assert isinstance(chat, ChatScreen)
            assert chat.query_one(SearchPanel).tree.labels() == labels_before
            best = {n.id for n in result.path(result.best_leaf_id)}
            assert labels_before == {n.id: node_label(n, n.id in best) for n in result.nodes}
            turn = chat.query_one(ChatTurn)
            assert turn.question == QUESTION
            assert "reasoning" in turn.query_one("Collapsible").title

            # a new question continues the reopened conversation
            await solve_in_chat(pilot, "What is 2+3?")
            [summary] = app.history.list()
            assert summary.n_exchanges == 2


class TestDeleteExport:
    @async_test
    async def test_export_markdown_json_then_delete(self, app_models):
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            result = await solve_in_chat(pilot, QUESTION)
            await pilot.press("f5")
            await wait_until(pilot, lambda: app.current_mode == "history")
            [summary] = app.history.list()
            await pilot.press("m")
            md = data_dir() / "exports" / f"{summary.id}.md"
            await wait_until(pilot, md.exists)
            text = md.read_text(encoding="utf-8")
            assert QUESTION in text and "| step | thought |" in text
            await pilot.press("j")
            js = data_dir() / "exports" / f"{summary.id}.json"
            await wait_until(pilot, js.exists)
            data = json.loads(js.read_text(encoding="utf-8"))
            assert data["exchanges"][0]["runs"][0]["nodes"] == json.loads(json.dumps(result.to_dict()))["nodes"]

            await pilot.press("d")  # asks for confirmation
            assert len(app.history.list()) == 1
            await pilot.press("d")
            await wait_until(pilot, lambda: app.history.list() == [])
            assert app.screen.query_one("DataTable").row_count == 0


class TestStore:
    def test_atomic_save_list_load_roundtrip(self):
        store = HistoryStore()
        conv = Conversation.new()
        result = synthetic_result()
        conv.exchanges.append(Exchange(result.question, runs=[result.to_dict()], answer=result.answer, status="done"))
        path = store.save(conv)
        assert path.parent == history_dir()
        assert not [p for p in history_dir().iterdir() if p.name.endswith(".tmp")]
        [summary] = store.list()
        assert summary.answer == "\\frac{7}{2}" and summary.n_exchanges == 1
        assert store.load(conv.id).to_dict() == json.loads(json.dumps(conv.to_dict()))

    def test_unreadable_files_are_skipped(self):
        store = HistoryStore()
        (history_dir() / "broken.json").write_text("{not json", encoding="utf-8")
        conv = Conversation.new()
        conv.exchanges.append(Exchange("q"))
        store.save(conv)
        assert [s.id for s in store.list()] == [conv.id]

    def test_markdown_lists_the_answer_path_with_symbols(self):
        conv = Conversation.new()
        result = synthetic_result()
        conv.exchanges.append(Exchange(result.question, runs=[result.to_dict()], answer=result.answer, status="done"))
        md = to_markdown(conv)
        assert "**Answer:** \\frac{7}{2}" in md
        assert "| 1 | We need to add" in md and "✓★∎ accepted" in md

    def test_bad_ids_are_refused(self):
        import pytest

        with pytest.raises(ValueError):
            HistoryStore().path("../../etc/passwd")

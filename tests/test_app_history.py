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
from specsearch.core.tree import SearchResult
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
            [summary] = app.services.history.list()
            assert summary.n_exchanges == 2


class TestDeleteExport:
    @async_test
    async def test_export_markdown_json_then_delete(self, app_models):
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            result = await solve_in_chat(pilot, QUESTION)
            await pilot.press("f5")
            await wait_until(pilot, lambda: app.current_mode == "history")
            [summary] = app.services.history.list()
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
            assert len(app.services.history.list()) == 1
            await pilot.press("d")
            await wait_until(pilot, lambda: app.services.history.list() == [])
            await wait_until(pilot, lambda: app.screen.query_one("DataTable").row_count == 0)


class TestStore:
    def test_atomic_save_list_load_roundtrip(self):
        store = HistoryStore()
        conv = Conversation.new()
        result = synthetic_result()
        conv.exchanges.append(Exchange(result.question, runs=[result], answer=result.answer, status="done"))
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
        conv.exchanges.append(Exchange(result.question, runs=[result], answer=result.answer, status="done"))
        md = to_markdown(conv)
        assert "**Answer:** \\frac{7}{2}" in md
        assert "| 1 | We need to add" in md and "✓★∎ accepted" in md

    def test_bad_ids_are_refused(self):
        import pytest

        with pytest.raises(ValueError):
            HistoryStore().path("../../etc/passwd")


PRM = {"kind": "judge", "model": "small.gguf", "head": None, "arith_check": True}
FLAG = "20 − 12 = 8, not 9"


def flagged_record() -> SearchResult:
    """A synthetic search record as Solver.solve saves it now: the reward model in its config,
    one best-path step (#2) and one rejected draft (#3) flagged by the arithmetic check."""
    result = synthetic_result()
    result.config["prm"] = PRM
    result.nodes[2].flag = FLAG
    result.nodes[3].flag = "2 + 2 = 4, not 5"
    return result


TUTOR_TURNS = [
    {"kind": "hint", "text": "Subtract 12 from 20."},
    {"kind": "step", "text": "20 - 12 = 9", "score": None, "ok": False,
     "verdict": f"✗ {FLAG} — have another look at that calculation.", "arithmetic": [FLAG]},
    {"kind": "hint", "text": "So 8 + 1 = 10", "ok": False, "verdict": "its arithmetic is off, left out",
     "arithmetic": ["8 + 1 = 9, not 10"]},
    {"kind": "step", "text": "20 - 12 = 8", "score": 0.9, "ok": True, "verdict": "✓ That step looks right."},
]


class TestRewardModelAndFlagsInExports:
    def test_markdown_names_the_reward_model_and_every_flag(self):
        conv = Conversation.new()
        conv.exchanges.append(Exchange("q", runs=[flagged_record()], answer="\\frac{7}{2}", status="done"))
        md = to_markdown(conv)
        assert "Reward model: judge on small.gguf, arithmetic check on" in md
        row = next(line for line in md.splitlines() if line.startswith("| 2 | 3 = 6/2"))
        assert "0.77 ⚠" in row  # flagged step on the answer path
        assert f"- ⚠ step 2, #2 (small, accepted): {FLAG}" in md
        assert "- ⚠ step 2, #3 (small, rejected): 2 + 2 = 4, not 5" in md  # off the path, still listed

    def test_markdown_of_records_without_them_is_unchanged(self):
        conv = Conversation.new()
        result = synthetic_result()
        conv.exchanges.append(Exchange(result.question, runs=[result], answer=result.answer, status="done"))
        md = to_markdown(conv)
        assert "Reward model" not in md and "⚠" not in md and "Arithmetic check" not in md

    def test_markdown_tutoring_turns_say_which_equation_is_off(self):
        conv = Conversation.new()
        conv.exchanges.append(Exchange("What is 20 - 12?", "tutor", tutor=TUTOR_TURNS, status="done"))
        lines = to_markdown(conv).splitlines()
        assert f"- **step**: 20 - 12 = 9 — ⚠ ✗ {FLAG} — have another look at that calculation." in lines
        assert "- **hint**: So 8 + 1 = 10 — ⚠ 8 + 1 = 9, not 10; its arithmetic is off, left out" in lines
        assert "- **step**: 20 - 12 = 8 — ✓ That step looks right." in lines


class TestFlagsInReopenedViews:
    @async_test
    async def test_reasoning_view_and_tutoring_view(self, app_models):
        conv = Conversation.new()
        conv.exchanges.append(Exchange("What is 1/2 + 3?", runs=[flagged_record()], answer="\\frac{7}{2}",
                                       status="done"))
        conv.exchanges.append(Exchange("What is 20 - 12?", "tutor", tutor=TUTOR_TURNS, status="done"))
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            await app.open_conversation(conv)
            await wait_until(pilot, lambda: len(app.screen.query(ChatTurn)) == 2)
            search_turn, tutor_turn = app.screen.query(ChatTurn)
            reasoning = str(search_turn.query_one(".reasoning").render())
            assert f"⚠ {FLAG}" in reasoning and "2 + 2 = 4" not in reasoning  # the answer path only
            assert app.screen.query_one(SearchPanel).stats.rows["reward model"] == \
                "judge on small.gguf, arithmetic check on"
            markdown = tutor_turn.query_one("Markdown")
            source = markdown.source
            assert "- ⚠ **your step:** 20 - 12 = 9" in source and FLAG in source
            assert "- ⚠ **hint left out:** So 8 + 1 = 10" in source and "8 + 1 = 9, not 10" in source
            assert "💡 **hint:** Subtract 12 from 20." in source
            assert "- **your step:** 20 - 12 = 8" in source

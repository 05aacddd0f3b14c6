"""Chat screen against the real core on tiny models: ask, cancel, quit."""

from __future__ import annotations

import json

from app_fixtures import (  # noqa: F401
    LONG, QUESTION, app_models, ask, async_test, finished, long_models, make_app, saved, type_text, wait_until,
)

from specsearch.app.formatting import node_label
from specsearch.app.history import HistoryStore
from specsearch.app.settings import resolve_models
from specsearch.app.widgets.chat_turn import ChatTurn
from specsearch.app.widgets.question_input import QuestionInput
from specsearch.app.widgets.search_panel import SearchPanel
from specsearch.core.tree import ThoughtNode


def assert_tree_matches(panel: SearchPanel, result) -> None:
    """The tree widget shows exactly the record's nodes, under their parents, labelled by fate."""
    tree = panel.tree
    labels = tree.labels()
    assert set(labels) == {n.id for n in result.nodes}
    best = {n.id for n in result.path(result.best_leaf_id)} if result.best_leaf_id is not None else set()
    for node in result.nodes:
        assert tree.parent_of(node.id) == node.parent_id
        assert labels[node.id] == node_label(node, node.id in best)
    # the root's children are the first-step thoughts
    assert [c.data for c in tree.root.children] == [n.id for n in result.nodes if n.parent_id is None]


class TestAsk:
    @async_test
    async def test_question_to_answer_tree_matches_record(self, app_models):
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await ask(pilot, QUESTION)
            await wait_until(pilot, finished(screen))
            result = screen.live.result
            assert result is not None and not result.cancelled and result.question == QUESTION
            assert len(result.nodes) > 0 and len(result.steps) == 3
            panel = screen.query_one(SearchPanel)
            assert_tree_matches(panel, result)
            # symbols carry the fate without colour
            fates = {n.fate for n in result.nodes}
            assert fates <= {"generated", "accepted", "rejected", "regenerated"}
            for node in result.nodes:
                symbol = {"generated": "•", "accepted": "✓", "rejected": "✗", "regenerated": "↻"}[node.fate]
                assert panel.tree.labels()[node.id].startswith(symbol)
            # the turn shows the final answer line and a collapsible reasoning view
            turn = screen.query_one(ChatTurn)
            status = str(turn.query_one(".status").render())
            assert "auto" in status  # the default method
            assert "reasoning" in turn.query_one("Collapsible").title
            # statistics were filled in from the result
            assert panel.stats.live is screen.live
            assert screen.live.stats.tokens == result.stats.tokens
            # saved to history as it happened, ending with the full record
            [summary] = app.services.history.list()
            conv = app.services.history.load(summary.id)
            [exchange] = conv.exchanges
            assert exchange.status == "done" and exchange.question == QUESTION
            assert [r.to_dict() for r in exchange.runs] == [json.loads(json.dumps(result.to_dict()))]
            assert exchange.settings["method"] == "auto"

    @async_test
    async def test_selecting_a_node_explains_its_fate(self, app_models):
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await ask(pilot, QUESTION)
            await wait_until(pilot, finished(screen))
            result = screen.live.result
            tree = screen.query_one(SearchPanel).tree
            tree.focus()
            await pilot.press("down")  # first thought under the question
            first = result.nodes[0]
            detail = await wait_until(pilot, lambda: (lambda d: d if f"#{first.id} · step 1" in d else "")(
                str(screen.query_one("#detail-text").render())))
            assert ("Kept in the beam" in detail) == first.selected
            # a rejected draft says why, and names its replacement
            rejected = [n for n in result.nodes if n.fate == "rejected"]
            if rejected:
                node = rejected[0]
                tree.move_cursor(tree.items[node.id])
                detail = await wait_until(pilot, lambda: (lambda d: d if f"#{node.id} ·" in d else "")(
                    str(screen.query_one("#detail-text").render())))
                assert "< β" in detail and "discarded" in detail

    @async_test
    async def test_history_recall_and_second_question_in_same_conversation(self, app_models):
        app = make_app(app_models, method="small")
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await ask(pilot, "What is 2+3?")
            await wait_until(pilot, finished(screen))
            box = screen.query_one("#question", QuestionInput)
            box.focus()
            await pilot.press("up")
            assert box.text == "What is 2+3?"
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(screen.query(ChatTurn)) == 2)
            await wait_until(pilot, finished(screen))
            [summary] = app.services.history.list()
            assert summary.n_exchanges == 2
            # method small: every thought is the small model's own
            assert {n.source for n in screen.live.result.nodes} == {"small"}


class TestBaseline:
    @async_test
    async def test_ctrl_b_times_ar_and_the_speedup_becomes_measured(self, app_models):
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await ask(pilot, QUESTION)
            await wait_until(pilot, finished(screen))
            panel = screen.query_one(SearchPanel)
            assert "measured" not in panel.stats.rows["speed-up vs ar"]
            await pilot.press("ctrl+b")
            await wait_until(pilot, lambda: QUESTION in app.services.baselines and not screen.running and saved(app)())
            assert "measured" in panel.stats.rows["speed-up vs ar"]
            assert f"ar {app.services.baselines[QUESTION]:.2f} s" in panel.stats.rows["speed-up vs ar"]
            exchange = app.services.history.load(app.services.history.list()[0].id).exchanges[0]
            assert [r.method for r in exchange.runs] == ["ar", "auto"]
            # ar was timed cold, not on the question the search had just read into the caches
            ar_first, search_first = (r.steps[0].calls[0] for r in exchange.runs)
            assert ar_first["model"] == search_first["model"] == "large"
            assert ar_first["prefill"] == search_first["prefill"] > 10
            assert exchange.runs[0].stats.wall_seconds == app.services.baselines[QUESTION]


class TestCancel:
    @async_test
    async def test_escape_cancels_and_keeps_the_tree(self, long_models):
        app = make_app(long_models, **LONG)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await ask(pilot, QUESTION)
            await wait_until(pilot, lambda: len(screen.live.nodes) >= 4, timeout=60)
            await pilot.press("escape")
            await wait_until(pilot, finished(screen), timeout=60)
            result = screen.live.result
            assert result.cancelled
            assert 1 <= len(result.steps) < LONG["max_depth"]
            assert_tree_matches(screen.query_one(SearchPanel), result)
            assert "cancelled" in str(screen.query_one(ChatTurn).query_one(".status").render())
            [summary] = app.services.history.list()
            exchange = app.services.history.load(summary.id).exchanges[0]
            assert exchange.status == "cancelled" and exchange.runs[0].cancelled is True
            assert len(exchange.runs[0].nodes) == len(result.nodes)


class TestQuit:
    @async_test
    async def test_ctrl_c_quits_cleanly_during_a_search(self, long_models):
        app = make_app(long_models, **LONG)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await ask(pilot, QUESTION)
            run = screen.runs.get("search")
            await wait_until(pilot, lambda: len(screen.live.nodes) >= 2, timeout=60)
            await pilot.press("ctrl+c")
        assert run.cancelled
        assert app.return_code == 0
        # the conversation was saved with the question (and the tree so far)
        [summary] = HistoryStore().list()
        assert summary.title.startswith("Tom has 3 apples")


class TestMissingModels:
    @async_test
    async def test_no_models_opens_model_manager_and_says_what_is_missing(self):
        app = make_app(None, check_models=True)
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_until(pilot, lambda: app.current_mode == "models")
            banner = str(app.screen.query_one("#models-banner").render())
            assert "No small / large / prm model configured" in banner
            assert "specsearch models" in banner
            # asking anyway explains instead of searching
            await pilot.press("f2")
            screen = app.screen
            screen.query_one("#question").focus()
            await type_text(pilot, "What is 1+1?")
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.query(".error-note"))
            assert "No small / large / prm model configured" in str(screen.query_one(".error-note").render())
            assert screen.live is None and app.services.history.list() == []

    @async_test
    async def test_bad_model_path_fails_with_a_message_and_app_keeps_working(self, tmp_path, app_models):
        bad = tmp_path / "not-a-model.gguf"
        bad.write_bytes(b"this is not a gguf file at all")
        app = make_app({"small": bad, "large": app_models["large"]})
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await ask(pilot, "What is 1+1?")
            await wait_until(pilot, finished(screen))
            error = str(screen.query_one(ChatTurn).query_one(".error").render())
            assert "not-a-model.gguf" in error
            exchange = app.services.history.load(app.services.history.list()[0].id).exchanges[0]
            assert exchange.status == "error" and "not-a-model.gguf" in exchange.error


class TestRewardModelShown:
    @async_test
    async def test_stats_panel_and_saved_result_name_the_reward_model(self, app_models):
        app = make_app(app_models, arith_check=False)
        expected = {"kind": "judge", "model": app_models["small"].name, "head": None, "arith_check": False}
        label = f"judge on {app_models['small'].name}, arithmetic check off"
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await ask(pilot, QUESTION)
            await wait_until(pilot, finished(screen))
            panel = screen.query_one(SearchPanel)
            assert panel.stats.rows["reward model"] == label
            table = panel.stats.query_one("#stats-table")
            shown = "\n".join(table.render_line(y).text for y in range(table.size.height))
            assert "reward model" in shown and "arithmetic check off" in shown  # on screen, maybe wrapped
            # the pooled solver was built with the setting
            assert app.services.pool.loaded(resolve_models(app.settings), app.settings.prm_kind, arith_check=False)
            [summary] = app.services.history.list()
            conv = app.services.history.load(summary.id)
            [exchange] = conv.exchanges
            assert exchange.runs[-1].config["prm"] == expected
            assert exchange.settings["arith_check"] is False and exchange.settings["prm_head"] is None

            # reopened from history, the panel still names it
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: panel.stats.live is None)
            await app.open_conversation(conv)
            await wait_until(pilot, lambda: panel.stats.rows.get("reward model") == label)

    @async_test
    async def test_records_without_it_show_no_row(self, app_models):
        from app_fixtures import synthetic_result

        from specsearch.app.history import Conversation, Exchange

        result = synthetic_result()  # made before searches recorded their reward model
        conv = Conversation.new()
        conv.exchanges.append(Exchange(result.question, runs=[result], answer=result.answer, status="done"))
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            await app.open_conversation(conv)
            panel = app.screen.query_one(SearchPanel)
            await wait_until(pilot, lambda: panel.stats.rows)
            assert "reward model" not in panel.stats.rows


class TestScoreBesideBeta:
    """A draft's score is shown beside the β it was judged against, with enough digits to tell them apart."""

    @staticmethod
    def label(score: float, beta: float, fate: str) -> str:
        return node_label(ThoughtNode(7, None, 2, "Step.", 3, "small", fate, score, score, beta))

    def test_two_digits_when_they_differ_there(self):
        assert "0.82 ≥β0.61 [small]" in self.label(0.82, 0.61, "accepted")
        assert "0.31 <β0.61 [small]" in self.label(0.31, 0.61, "rejected")

    def test_more_digits_when_they_round_alike(self):
        assert "0.996 <β0.997 [small]" in self.label(0.9962, 0.9968, "rejected")
        assert "0.9991 ≥β0.9986 [small]" in self.label(0.99912, 0.99861, "accepted")
        assert "1.0000 <β1.0000 [small]" in self.label(0.999991, 0.999996, "rejected")  # at most 4

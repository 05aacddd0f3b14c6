"""The live tree of an MCTS search shows each node's visits and value (pilot, tiny models)."""

from __future__ import annotations

from app_fixtures import QUESTION, app_models, ask, async_test, finished, make_app, wait_until  # noqa: F401

from specsearch.app.formatting import node_label
from specsearch.app.live import LiveSearch
from specsearch.app.widgets.chat_turn import ChatTurn
from specsearch.app.widgets.search_panel import SearchPanel
from specsearch.core import events as ev
from specsearch.core.tree import ThoughtNode


class TestMctsTree:
    @async_test
    async def test_nodes_show_visits_and_values(self, app_models):
        app = make_app(app_models, search="mcts", mcts_iterations=2)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await ask(pilot, QUESTION)
            await wait_until(pilot, finished(screen))
            result = screen.live.result
            assert result.config["search"] == "mcts"
            status = str(screen.query_one(ChatTurn).query_one(".status").render())
            assert status.startswith("auto · mcts · ")
            labels = screen.query_one(SearchPanel).tree.labels()
            best = {n.id for n in result.path(result.best_leaf_id)}
            visited = [n for n in result.nodes if n.visits is not None]
            assert visited
            for node in visited:
                assert f" n={node.visits} v={node.value:.2f} " in labels[node.id]
                assert labels[node.id] == node_label(node, node.id in best)

    def test_live_tree_takes_visits_and_values_from_events(self):
        live = LiveSearch()
        live.apply([ev.StepStarted(1, (), None)])
        drafted = ThoughtNode(id=0, parent_id=None, depth=1, text="x", n_tokens=1, source="small")
        live.apply([ev.ThoughtDrafted(drafted), ev.ValuesBackedUp(1, {0: 3}, {0: 0.8249})])
        assert (live.nodes[0].visits, live.nodes[0].value) == (3, 0.8249)
        assert live.take_dirty() == {0}
        assert live.steps[-1].visits == {0: 3} and live.steps[-1].values == {0: 0.8249}
        assert "n=3 v=0.82" in node_label(live.nodes[0])


"""Search strategies (beam, mcts, best-of-n, dvts) with every generator, on tiny models (no mocks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from specsearch.cli.main import main
from specsearch.core import events as ev
from specsearch.core.config import SearchConfig, search_options
from specsearch.core.cost_model import step_timings
from specsearch.core.events import CancelToken
from specsearch.core.strategies import strategy_names
from specsearch.core.tree import SearchResult
from test_search import QUESTION, small_config, solver, tree_signature  # noqa: F401  (solver: a fixture)

STRATEGIES = ["beam", "mcts", "best-of-n", "dvts"]
KNOBS = dict(mcts_iterations=3, n_solutions=3, dvts_subtrees=2)


def config(search: str, **kw) -> SearchConfig:
    return small_config(search=search, **{**KNOBS, **kw})


def kept(result: SearchResult) -> list:
    """The thoughts the search went on with: every node but the rejected drafts."""
    return [n for n in result.nodes if n.fate != "rejected"]


def test_the_registry_lists_the_strategies_as_choices():
    assert strategy_names() == tuple(STRATEGIES)
    (option,) = [o for o in search_options() if o.name == "search"]
    assert option.choices == tuple(STRATEGIES) and option.default == "beam"
    assert "mcts:" in option.choice_help
    with pytest.raises(ValueError, match="unknown search 'nope'; choose from beam, mcts, best-of-n, dvts"):
        SearchConfig(search="nope")
    with pytest.raises(ValueError, match="mcts_iterations must be at least 1"):
        SearchConfig(mcts_iterations=0)
    assert SearchResult.from_dict({"config": {"method": "ar"}}).search == "beam"  # a record from before strategies


@pytest.mark.parametrize("search", STRATEGIES)
class TestEveryStrategy:
    def test_minus_infinity_equals_the_small_generator(self, solver, search):
        spec = solver.solve(QUESTION, config(search, method="specsearch", threshold_mode="fixed",
                                             fixed_beta=-math.inf))
        small = solver.solve(QUESTION, config(search, method="small"))
        assert {n.fate for n in spec.nodes} == {"accepted"}
        assert tree_signature(spec) == tree_signature(small)
        assert [(n.visits, n.value and round(n.value, 4)) for n in spec.nodes] == \
               [(n.visits, n.value and round(n.value, 4)) for n in small.nodes]
        assert spec.solution == small.solution and spec.solution

    def test_plus_infinity_equals_the_sps_generator(self, solver, search):
        spec = solver.solve(QUESTION, config(search, method="specsearch", threshold_mode="fixed",
                                             fixed_beta=math.inf))
        sps = solver.solve(QUESTION, config(search, method="sps"))
        assert spec.stats.thoughts_accepted == 0 and spec.stats.thoughts_regenerated > 0
        fields = ("depth", "text", "n_tokens", "selected", "finished", "visits")
        assert [tuple(getattr(n, f) for f in fields) for n in kept(spec)] == \
               [tuple(getattr(n, f) for f in fields) for n in sps.nodes]
        assert spec.solution == sps.solution and spec.solution

    def test_same_seed_same_tree(self, solver, search):
        a = solver.solve(QUESTION, config(search, method="small"))
        b = solver.solve(QUESTION, config(search, method="small"))
        assert tree_signature(a) == tree_signature(b)
        c = solver.solve(QUESTION, config(search, method="small", seed=8))
        assert tree_signature(c) != tree_signature(a)

    def test_cancel_keeps_the_tree(self, solver, search):
        token = CancelToken()
        seen: list[ev.SearchEvent] = []

        def on_event(e):
            seen.append(e)
            if isinstance(e, ev.StepStarted) and sum(isinstance(x, ev.StepStarted) for x in seen) == 2:
                token.cancel()

        result = solver.solve(QUESTION, config(search, method="specsearch", max_depth=6), on_event=on_event,
                              cancel=token)
        assert result.cancelled and isinstance(seen[-1], ev.SearchFinished)
        assert sum(isinstance(e, ev.StepStarted) for e in seen) == 2 == len(result.steps)
        created = [e.node.id for e in seen if isinstance(e, (ev.ThoughtDrafted, ev.ThoughtRegenerated))]
        assert created and sorted(created) == [n.id for n in result.nodes]
        # the cancelled step's thoughts are in the tree, not chosen
        last_step = max(i for i, e in enumerate(seen) if isinstance(e, ev.StepStarted))
        cut = [e.node.id for e in seen[last_step:] if isinstance(e, ev.ThoughtDrafted)]
        assert cut and not any(result.node(i).selected for i in cut)

    def test_token_budget_stops_after_the_step_that_spends_it(self, solver, search):
        result = solver.solve(QUESTION, config(search, method="small", token_budget=1))
        assert len(result.steps) == 1
        assert result.solution == result.node(result.best_leaf_id).text
        assert result.config["search"] == result.search == search


class TestMcts:
    def test_one_iteration_per_step_is_greedy(self, solver):
        """Each step expands the committed thought and commits to its best child: beam width 1."""
        mcts = solver.solve(QUESTION, config("mcts", method="small", mcts_iterations=1, max_depth=4))
        greedy = solver.solve(QUESTION, config("beam", method="small", beam_width=1, max_depth=4))
        assert tree_signature(mcts) == tree_signature(greedy)
        assert [s.selected for s in mcts.steps] == [s.selected for s in greedy.steps]

    def test_visits_count_the_backups_and_a_leaf_is_worth_its_prm_value(self, solver):
        seen: list[ev.SearchEvent] = []
        result = solver.solve(QUESTION, config("mcts", method="small", mcts_iterations=4), on_event=seen.append)
        commits = sum(isinstance(e, ev.BeamsSelected) for e in seen)
        assert sum(isinstance(e, ev.ValuesBackedUp) for e in seen) == 4 * commits
        nodes = {n.id: n for n in result.nodes}
        children: dict[int, list] = {}
        for n in result.nodes:
            children.setdefault(n.parent_id, []).append(n)
        explored = 0
        for n in result.nodes:
            kids = children.get(n.id, [])
            if not kids:  # a leaf: its own PRM value, once per time it was reached
                assert n.value == pytest.approx(n.path_score)
                continue
            explored += not n.selected
            # one visit when made, one for its expansion, one per backup through a child
            assert n.visits == 2 + sum(k.visits - 1 for k in kids)
            assert nodes[n.id].value is not None
        assert explored > 0  # more than one iteration per step also explores beside the committed path
        # the step records hold the visits as they stood after each step's backups
        last = {}
        for step in result.steps:
            last.update(step.visits)
        assert last == {n.id: n.visits for n in result.nodes if n.visits is not None}

    def test_a_depths_second_expansion_draws_like_a_second_beam(self, solver):
        """Expanding two thoughts of one depth numbers their children apart, as beam search
        numbers its beams' (the seeds follow the child index): with a large exploration
        constant the 2nd and 3rd iterations expand the two best first thoughts, in rank order."""
        mcts = solver.solve(QUESTION, config("mcts", method="small", mcts_iterations=3, mcts_exploration=100.0,
                                             max_depth=2, children=3))
        beam = solver.solve(QUESTION, config("beam", method="small", beam_width=2, max_depth=2, children=3))
        second = [(n.parent_id, n.text, n.n_tokens) for n in mcts.nodes if n.depth == 2]
        assert len({p for p, _, _ in second}) == 2
        assert second == [(n.parent_id, n.text, n.n_tokens) for n in beam.nodes if n.depth == 2]

    def test_each_expansion_is_a_step_with_its_own_nodes(self, solver):
        result = solver.solve(QUESTION, config("mcts", method="small", mcts_iterations=3, max_depth=3))
        depths = [s.step for s in result.steps]
        assert len(depths) > len(set(depths))  # several expansions at one depth
        timings = step_timings(result.nodes, result.steps)
        # every node belongs to exactly one step, the one that made it
        assert sum(t.thoughts for t in timings) == len(result.nodes)
        for record, timing in zip(result.steps, timings):
            assert timing.calls["small"].batch == timing.thoughts == result.config["children"]
            assert all(n.depth == record.step for n in result.nodes[record.first_node:][:timing.thoughts])

    def test_records_round_trip_visits_and_values(self, solver):
        result = solver.solve(QUESTION, config("mcts", method="small"))
        again = SearchResult.from_dict(json.loads(json.dumps(result.to_dict())))
        assert again.steps == result.steps and any(s.visits for s in again.steps)
        assert again.nodes == result.nodes and any(n.visits for n in again.nodes)


class TestShapes:
    def test_best_of_n_grows_n_chains_and_votes(self, solver):
        result = solver.solve(QUESTION, config("best-of-n", method="small", n_solutions=3, children=4))
        assert len([n for n in result.nodes if n.depth == 1]) == 3
        parents = [n.parent_id for n in result.nodes if n.parent_id is not None]
        assert len(parents) == len(set(parents))  # a chain: one child per thought
        assert all(n.selected for n in result.nodes)
        assert result.config["children"] == 4  # the record keeps the config as given

    def test_dvts_keeps_the_best_child_of_each_subtree(self, solver):
        result = solver.solve(QUESTION, config("dvts", method="small", dvts_subtrees=2, children=3))
        first = [n for n in result.nodes if n.depth == 1]
        assert len(first) == 6
        rank = lambda n: (-n.path_score, n.id)  # noqa: E731
        # the first step's children are numbered subtree by subtree (beam-major)
        assert sorted(result.steps[0].selected) == sorted(min(first[i:i + 3], key=rank).id for i in (0, 3))
        for step in result.steps[1:]:
            here = [n for n in result.nodes if n.depth == step.step]
            best = {}
            for n in here:
                if n.parent_id not in best or rank(n) < rank(best[n.parent_id]):
                    best[n.parent_id] = n
            assert sorted(step.selected) == sorted(n.id for n in best.values())


class TestCommands:
    MODELS_AND_SIZE = ("--depth", "2", "--step-tokens", "6", "--children", "2")

    def test_bench_runs_a_strategy_variant_beside_ar(self, capsys, tiny, tmp_path: Path):
        data = tmp_path / "probs.jsonl"
        data.write_text(json.dumps({"question": "What is 1 + 1?", "answer": "2"}) + "\n")
        code = main(["bench", "--dataset", str(data), "--n", "1", "--methods", "ar,specsearch@search=mcts",
                     "--small", str(tiny["draft"]), "--large", str(tiny["target"]), "--json",
                     "--mcts-iterations", "2", *self.MODELS_AND_SIZE, "--out", str(tmp_path / "b")])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert list(json.loads(out)) == ["ar", "specsearch@search=mcts"]
        records = [json.loads(line) for line in (tmp_path / "b" / "results.jsonl").read_text().splitlines()]
        assert [(r["method"], r["search"]) for r in records] == [("ar", "beam"), ("specsearch@search=mcts", "mcts")]

    def test_solve_takes_search_and_its_knobs(self, capsys, tiny):
        code = main(["solve", "What is 1 + 1?", "--small", str(tiny["draft"]), "--method", "small", "--json",
                     "--search", "dvts", "--dvts-subtrees", "3", *self.MODELS_AND_SIZE])
        out, err = capsys.readouterr()
        assert code == 0, err
        finished = json.loads(out.strip().splitlines()[-1])
        assert finished["event"] == "SearchFinished"
        result = SearchResult.from_dict(finished["result"])
        assert result.search == "dvts" and result.config["dvts_subtrees"] == 3
        assert len([n for n in result.nodes if n.depth == 1]) == 3 * 2

    def test_a_bad_search_is_a_one_line_error(self, capsys):
        with pytest.raises(SystemExit) as exit_:
            main(["solve", "q", "--search", "bfs"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and "Traceback" not in err and "invalid choice: 'bfs'" in err

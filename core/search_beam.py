"""Searches that grow every live partial solution each step: beam, dvts, best-of-n.

Each step: every live beam gets ``children`` candidate thoughts (from the
method's generator, scored by the PRM); a selection keeps some of them; kept
thoughts that end a solution (end of generation or a final answer) become
finished leaves, the others are expanded next step.  The strategies differ
only in where they start and what they keep:

beam       one beam from the question; keep the top ``beam_width`` by path score
dvts       ``dvts_subtrees`` independent subtrees from the question (diverse
           verifier tree search); each keeps its own best child (greedy by PRM)
best-of-n  ``n_solutions`` independent chains of one thought per step, the
           answer by a weighted vote (the largest sum of path scores)
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from .events import BeamsSelected
from .search_run import SearchRun, check_question_fits, choose, expand_step, grown, mark_paths
from .search_state import Beam, Candidate

Select = Callable[[list[Candidate], int], list[Candidate]]
"""The kept candidates of one step, from all of them ranked best first and the beam width."""


def beam_search(run: SearchRun) -> Candidate | None:
    return _grow_all(run, [run.root], _top, run.config.answer_selection)


def dvts(run: SearchRun) -> Candidate | None:
    return _grow_all(run, _copies(run.root, run.config.dvts_subtrees), _best_per_beam, run.config.answer_selection)


def best_of_n(run: SearchRun) -> Candidate | None:
    # One thought per chain per step: the generators read ``children`` from the state's config
    # (the result still records the config as given).
    run.state.config = dataclasses.replace(run.config, children=1)
    return _grow_all(run, _copies(run.root, run.config.n_solutions), _best_per_beam, "weighted_vote")


def _copies(root: Beam, n: int) -> list[Beam]:
    """``n`` beams at the question: distinct objects, so each heads its own subtree."""
    return [dataclasses.replace(root) for _ in range(n)]


def _top(ranked: list[Candidate], width: int) -> list[Candidate]:
    return ranked[:width]


def _best_per_beam(ranked: list[Candidate], width: int) -> list[Candidate]:
    """The best child of each beam: every subtree (or chain) goes on by itself."""
    seen: set[int] = set()
    kept = []
    for c in ranked:
        if id(c.beam) not in seen:
            seen.add(id(c.beam))
            kept.append(c)
    return kept


def _grow_all(run: SearchRun, beams: list[Beam], select: Select, answer_selection: str) -> Candidate | None:
    state, config = run.state, run.config
    check_question_fits(run, beams)
    finished: list[Candidate] = []
    last_selected: list[Candidate] = []
    for depth in range(1, config.max_depth + 1):
        if state.cancelled or not beams or run.budget_spent():
            break
        cands = expand_step(run, beams, depth, last_selected, finished)
        if cands is None:
            break
        with state.phase("select"):
            mark_paths(cands, depth, config)
            ranked = sorted(cands, key=lambda c: (-c.node.path_score, c.node.id))
            kept = select(ranked, config.beam_width)
            for c in kept:
                c.node.selected = True
            state.step.selected = [c.node.id for c in kept]
            done = [c for c in kept if c.node.finished]
            finished += done
            last_selected = kept
            beams = [grown(c) for c in kept if not c.node.finished]
        state.emit(BeamsSelected(depth, tuple(c.node.id for c in kept), tuple(c.node.id for c in done)))
        state.publish_stats()
    return choose(finished or last_selected, answer_selection)

"""One run of a tree search: what every search strategy (core.strategies) shares.

A strategy decides which partial solutions grow next and which answer wins;
the rest is here: the run's state, generator and threshold (:class:`SearchRun`),
growing beams by one step (:func:`expand_step`), path scores and finish reasons
(:func:`mark_paths`), the token budget, and answer selection (:func:`choose`).

Near the context limit the search still answers: each step's token budget is
clipped to the room left in the writers' KV caches, and a beam with too little
room ends as a finished leaf marked ``finish_reason == "context"`` (the PRM's
own limit is handled where thoughts are scored: core.prm_window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .answers import extract_answer, final_answer_present, is_equivalent
from .errors import ContextOverflowError, KVCacheFullError
from .events import StepStarted
from .generators import ThoughtGenerator
from .remote_client import RemoteError
from .search_state import Beam, Candidate, SearchState
from .threshold import Threshold
from .tree import StepRecord

if TYPE_CHECKING:  # core.config imports this module (config -> strategies -> here)
    from .config import SearchConfig

MIN_STEP_TOKENS = 16
"""A beam whose next thought would get fewer tokens than this (or max_step_tokens, if
smaller) ends where it is: the context is full (see beams_with_room)."""


@dataclass
class SearchRun:
    """The parts of one search a strategy works with; ``root`` is the question (and any prefix steps)."""

    state: SearchState
    generator: ThoughtGenerator
    threshold: Threshold
    root: Beam

    @property
    def config(self) -> SearchConfig:
        return self.state.config

    def budget_spent(self) -> bool:
        """Whether the models have generated config.token_budget tokens (never, when it is 0)."""
        budget = self.config.token_budget
        return budget > 0 and sum(self.state.stats.tokens.values()) >= budget


def aggregate(parent: float | None, score: float, how: str) -> float:
    if parent is None or how == "last":
        return score
    if how == "min":
        return min(parent, score)
    if how == "prod":
        return parent * score
    raise ValueError(f"unknown aggregation {how!r}")


def check_question_fits(run: SearchRun, beams: list[Beam]) -> None:
    """ContextOverflowError unless the first step's thoughts for ``beams`` fit the context."""
    config = run.config
    room = _room(run.generator, beams, config.children)
    if room < _min_step_room(config):
        raise ContextOverflowError(
            f"the question has {len(beams[0].tokens)} tokens and leaves room for {max(room, 0)} tokens per thought "
            f"({len(beams) * config.children} thoughts at once); shorten it, lower children or load the models "
            f"with a larger n_ctx"
        )


def expand_step(run: SearchRun, beams: list[Beam], depth: int, last_selected: list[Candidate],
                finished: list[Candidate]) -> list[Candidate] | None:
    """The scored thoughts of one step for those of ``beams`` with room in the context,
    after a StepRecord and a StepStarted event; None when there are none: no beam has room,
    the context overflowed (the beams end as finished leaves, in ``finished``), or the
    search was cancelled or a served model failed (this step's thoughts stay in the tree,
    unselected; the failure is ``state.error``).
    ``last_selected`` holds the candidates the beams end at."""
    state = run.state
    beams = beams_with_room(state, run.generator, beams, last_selected, finished)
    if not beams:
        return None
    state.steps.append(StepRecord(depth, run.threshold.beta, first_node=len(state.nodes)))
    state.emit(StepStarted(depth, tuple(b.node_id for b in beams if b.node_id is not None), run.threshold.beta))
    try:
        cands = run.generator.expand(state, beams, depth)
    except (ContextOverflowError, KVCacheFullError):
        if beams[0].node_id is None:
            raise
        # The room estimate fell short (cells the cache could not share): the
        # beams end with what they have; this step's thoughts stay unselected.
        finish_for_context(beams, last_selected, finished)
        return None
    except RemoteError as e:
        state.error = str(e)  # the step's thoughts so far stay in the tree, unselected
        return None
    return None if state.cancelled else cands


def mark_paths(cands: list[Candidate], depth: int, config: SearchConfig) -> None:
    """Each candidate's path score and whether (and why) it ends its solution."""
    for c in cands:
        c.node.path_score = aggregate(c.beam.path_score, c.node.score, config.aggregation)
        c.node.finish_reason = _finish_reason(c, depth, config.max_depth)
        c.node.finished = c.node.finish_reason is not None


def grown(c: Candidate) -> Beam:
    """The beam that continues from candidate ``c``."""
    return Beam(c.node.id, c.beam.tokens + c.tokens, c.beam.steps + [c.node.text], c.node.path_score)


def _finish_reason(c: Candidate, depth: int, max_depth: int) -> str | None:
    """Why ``c`` ends its solution (see core.tree.FinishReason), or None when it does not."""
    if c.finish_reason in ("eos", "context"):
        return c.finish_reason
    if final_answer_present(c.node.text):
        return "answer"
    return "depth" if depth == max_depth else None


def _min_step_room(config: SearchConfig) -> int:
    """The fewest tokens a thought may be given: a beam with less room left ends instead."""
    return min(config.max_step_tokens, MIN_STEP_TOKENS)


def _room(generator: ThoughtGenerator, beams: list[Beam], children: int) -> float:
    """``generator.room``; a generator registered without one is given the whole step budget."""
    room = getattr(generator, "room", None)
    return room(beams, children) if room is not None else math.inf


def beams_with_room(state: SearchState, generator: ThoughtGenerator, beams: list[Beam],
                    last_selected: list[Candidate], finished: list[Candidate]) -> list[Beam]:
    """The beams that can take another step, and this step's token budget in
    ``state.step_tokens``: while the step's thoughts would have less than the
    minimum room in the context, the longest beam ends with what it has."""
    config = state.config
    beams = list(beams)
    while beams:
        room = _room(generator, beams, config.children)
        if room >= _min_step_room(config) or beams[0].node_id is None:
            state.step_tokens = int(max(1, min(config.max_step_tokens, room)))
            return beams
        longest = max(beams, key=lambda b: len(b.tokens))
        finish_for_context([longest], last_selected, finished)
        beams.remove(longest)
    return beams


def finish_for_context(beams: list[Beam], last_selected: list[Candidate], finished: list[Candidate]) -> None:
    """Make the nodes ``beams`` end at finished leaves: the context has no room for their next step."""
    by_id = {c.node.id: c for c in last_selected}
    for beam in beams:
        c = by_id[beam.node_id]
        c.node.finished, c.node.finish_reason = True, "context"
        finished.append(c)


def choose(leaves: list[Candidate], how: str) -> Candidate | None:
    """best: the leaf with the highest path score; weighted_vote: the best leaf of the
    answer whose leaves have the largest summed path score."""
    if not leaves:
        return None
    best = max(leaves, key=lambda c: (c.node.path_score if c.node.path_score is not None else -math.inf, -c.node.id))
    if how != "weighted_vote":
        return best
    groups: list[tuple[str, float, Candidate]] = []
    for c in leaves:
        answer = extract_answer(c.node.text)
        if answer is None:
            continue
        weight = c.node.path_score or 0.0
        for i, (ans, total, rep) in enumerate(groups):
            if is_equivalent(answer, ans):
                better = rep if (rep.node.path_score or 0) >= weight else c
                groups[i] = (ans, total + weight, better)
                break
        else:
            groups.append((answer, weight, c))
    if not groups:
        return best
    return max(groups, key=lambda g: g[1])[2]

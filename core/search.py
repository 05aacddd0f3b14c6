"""Beam search over thoughts, with any thought generator.

Each step: every live beam gets ``children`` candidate thoughts (from the
method's generator, scored by the PRM); the top ``beam_width`` candidates by
path score are kept; kept thoughts that end a solution (end of generation or a
final answer) become finished leaves, the others are expanded next step.

Near the context limit the search still answers: each step's token budget is
clipped to the room left in the writers' KV caches, and a beam with too little
room ends as a finished leaf marked ``finish_reason == "context"`` (the PRM's
own limit is handled where thoughts are scored: core.prm_window).

A served model that fails mid-search (core.remote_client.RemoteError) ends the
search as a cancel does: the tree so far is the result, ``cancelled`` and with
the failure in ``error``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from .answers import extract_answer, final_answer_present, is_equivalent
from .config import SearchConfig
from .errors import ContextOverflowError, KVCacheFullError
from .events import BeamsSelected, CancelToken, SearchEvent, SearchFinished, SearchStarted, StepStarted
from .generators import Models, ThoughtGenerator
from .methods import make_generator
from .remote_client import RemoteError
from .search_state import Beam, Candidate, SearchState
from .threshold import Threshold
from .tree import SearchResult, StepRecord

MIN_STEP_TOKENS = 16
"""A beam whose next thought would get fewer tokens than this (or max_step_tokens, if
smaller) ends where it is: the context is full (see _beams_with_room)."""


def aggregate(parent: float | None, score: float, how: str) -> float:
    if parent is None or how == "last":
        return score
    if how == "min":
        return min(parent, score)
    if how == "prod":
        return parent * score
    raise ValueError(f"unknown aggregation {how!r}")


def build_prompt(models: Models, question: str, config: SearchConfig, prefix_steps: Sequence[str] = ()) -> list[int]:
    engine = models.large or models.small
    messages = []
    if config.system_prompt:
        messages.append({"role": "system", "content": config.system_prompt})
    messages.append({"role": "user", "content": question})
    tokens = engine.chat_tokens(messages)
    if prefix_steps:
        text = config.delimiter.join(prefix_steps) + config.delimiter
        tokens += engine.tokenize(text, add_special=False)
    return tokens


def run_search(
    question: str,
    models: Models,
    config: SearchConfig,
    on_event: Callable[[SearchEvent], None] | None = None,
    cancel: CancelToken | None = None,
    prefix_steps: Sequence[str] = (),
) -> SearchResult:
    emit = on_event or (lambda event: None)
    state = SearchState(question, config, emit, cancel)
    threshold = Threshold(config)
    generator = make_generator(config.method, models, threshold)
    emit(SearchStarted(question, config.method, config.to_dict()))

    prompt = build_prompt(models, question, config, prefix_steps)
    beams = [Beam(None, prompt, list(prefix_steps))]
    _check_question_fits(generator, beams[0], config)
    finished: list[Candidate] = []
    last_selected: list[Candidate] = []
    error: str | None = None
    for depth in range(1, config.max_depth + 1):
        if state.cancelled or not beams:
            break
        beams = _beams_with_room(state, generator, beams, last_selected, finished)
        if not beams:
            break
        state.steps.append(StepRecord(depth, threshold.beta))
        emit(StepStarted(depth, tuple(b.node_id for b in beams if b.node_id is not None), threshold.beta))
        try:
            cands = generator.expand(state, beams, depth)
        except (ContextOverflowError, KVCacheFullError):
            if beams[0].node_id is None:
                raise
            # The room estimate fell short (cells the cache could not share): the
            # beams end with what they have; this step's thoughts stay unselected.
            _finish_for_context(beams, last_selected, finished)
            break
        except RemoteError as e:
            error = str(e)  # the step's thoughts so far stay in the tree, unselected
            break
        if state.cancelled:
            break  # the thoughts of this step stay in the tree, unselected
        with state.phase("select"):
            for c in cands:
                c.node.path_score = aggregate(c.beam.path_score, c.node.score, config.aggregation)
                c.node.finish_reason = _finish_reason(c, depth, config.max_depth)
                c.node.finished = c.node.finish_reason is not None
            ranked = sorted(cands, key=lambda c: (-c.node.path_score, c.node.id))
            kept = ranked[: config.beam_width]
            for c in kept:
                c.node.selected = True
            state.step.selected = [c.node.id for c in kept]
            done = [c for c in kept if c.node.finished]
            finished += done
            last_selected = kept
            beams = [
                Beam(c.node.id, c.beam.tokens + c.tokens, c.beam.steps + [c.node.text], c.node.path_score)
                for c in kept
                if not c.node.finished
            ]
        emit(BeamsSelected(depth, tuple(c.node.id for c in kept), tuple(c.node.id for c in done)))
        state.publish_stats()

    leaves = finished or last_selected
    best = _choose(leaves, config.answer_selection)
    result = SearchResult(
        question=question,
        method=config.method,
        config=config.to_dict(),
        nodes=state.nodes,
        steps=state.steps,
        best_leaf_id=best.node.id if best else None,
        solution="",
        answer=None,
        stats=state.stats,
        cancelled=state.cancelled or error is not None,
        error=error,
    )
    if best is not None:
        result.solution = config.delimiter.join(list(prefix_steps) + [n.text for n in result.path(best.node.id)])
        result.answer = extract_answer(result.solution)
    state.publish_stats()
    emit(SearchFinished(result))
    return result


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


def _check_question_fits(generator: ThoughtGenerator, beam: Beam, config: SearchConfig) -> None:
    room = _room(generator, [beam], config.children)
    if room < _min_step_room(config):
        raise ContextOverflowError(
            f"the question has {len(beam.tokens)} tokens and leaves room for {max(room, 0)} tokens per thought "
            f"({config.children} thoughts at once); shorten it, lower children or load the models with a larger n_ctx"
        )


def _beams_with_room(state: SearchState, generator: ThoughtGenerator, beams: list[Beam],
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
        _finish_for_context([longest], last_selected, finished)
        beams.remove(longest)
    return beams


def _finish_for_context(beams: list[Beam], last_selected: list[Candidate], finished: list[Candidate]) -> None:
    """Make the nodes ``beams`` end at finished leaves: the context has no room for their next step."""
    by_id = {c.node.id: c for c in last_selected}
    for beam in beams:
        c = by_id[beam.node_id]
        c.node.finished, c.node.finish_reason = True, "context"
        finished.append(c)


def _choose(leaves: list[Candidate], how: str) -> Candidate | None:
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

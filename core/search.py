"""Beam search over thoughts, with any thought generator.

Each step: every live beam gets ``children`` candidate thoughts (from the
method's generator, scored by the PRM); the top ``beam_width`` candidates by
path score are kept; kept thoughts that end a solution (end of generation or a
final answer) become finished leaves, the others are expanded next step.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from .answers import extract_answer, final_answer_present, is_equivalent
from .config import SearchConfig
from .events import BeamsSelected, CancelToken, SearchEvent, SearchFinished, SearchStarted, StepStarted
from .generators import Models
from .methods import make_generator
from .search_state import Beam, Candidate, SearchState
from .threshold import Threshold
from .tree import SearchResult, StepRecord


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

    engine = models.large or models.small
    prompt = build_prompt(models, question, config, prefix_steps)
    engine.check_fits(len(prompt) + config.max_step_tokens, "question")
    beams = [Beam(None, prompt, list(prefix_steps))]
    finished: list[Candidate] = []
    last_selected: list[Candidate] = []
    for depth in range(1, config.max_depth + 1):
        if state.cancelled or not beams:
            break
        state.steps.append(StepRecord(depth, threshold.beta))
        emit(StepStarted(depth, tuple(b.node_id for b in beams if b.node_id is not None), threshold.beta))
        cands = generator.expand(state, beams, depth)
        if state.cancelled:
            break  # the thoughts of this step stay in the tree, unselected
        with state.phase("select"):
            for c in cands:
                c.node.path_score = aggregate(c.beam.path_score, c.node.score, config.aggregation)
                c.node.finished = (
                    c.finish_reason in ("eos", "context")
                    or final_answer_present(c.node.text)
                    or depth == config.max_depth
                )
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
        cancelled=state.cancelled,
    )
    if best is not None:
        result.solution = config.delimiter.join(list(prefix_steps) + [n.text for n in result.path(best.node.id)])
        result.answer = extract_answer(result.solution)
    state.publish_stats()
    emit(SearchFinished(result))
    return result


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

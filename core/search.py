"""A search over thoughts: any search strategy with any thought generator.

:func:`run_search` is the entry point: it builds the prompt, the search's state,
threshold and the method's generator (core.methods), runs the strategy
``config.search`` names (core.strategies: beam, mcts, best-of-n, dvts) and
turns the leaf it chose into the result.  What the strategies share (expanding
beams by a step, the context-limit guard, answer selection) is core.search_run.

A served model that fails mid-search (core.remote_client.RemoteError) ends the
search as a cancel does: the tree so far is the result, ``cancelled`` and with
the failure in ``error``.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .answers import extract_answer
from .config import SearchConfig
from .events import CancelToken, SearchEvent, SearchFinished, SearchStarted
from .generators import Models
from .methods import make_generator
from .search_run import SearchRun
from .search_state import Beam, SearchState
from .strategies import get_strategy
from .threshold import Threshold
from .tree import SearchResult


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
    strategy = get_strategy(config.search)
    emit(SearchStarted(question, config.method, config.to_dict()))

    prompt = build_prompt(models, question, config, prefix_steps)
    best = strategy.run(SearchRun(state, generator, threshold, Beam(None, prompt, list(prefix_steps))))
    finish = getattr(generator, "finish", None)  # a generator that learns across searches (auto) takes in the last step
    if finish is not None:
        finish(state)
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
        error=state.error,
    )
    if best is not None:
        result.solution = config.delimiter.join(list(prefix_steps) + [n.text for n in result.path(best.node.id)])
        result.answer = extract_answer(result.solution)
    state.publish_stats()
    emit(SearchFinished(result))
    return result

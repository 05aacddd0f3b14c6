"""The search strategies by name: how the tree of thoughts is searched.

A strategy decides which partial solutions grow next and which answer wins;
how a node's children are made is the method's generator (core.methods), so
every method runs under every strategy.  SearchConfig validates ``search``
against this registry, the CLI's ``--search`` and the app's settings list
:func:`strategy_names` with their descriptions, and core.search.run_search
runs the chosen one.  A new strategy is one :func:`register_strategy` call: a
function from a core.search_run.SearchRun to the chosen leaf (or None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import SpecSearchError
from .search_beam import beam_search, best_of_n, dvts
from .search_mcts import mcts
from .search_run import SearchRun
from .search_state import Candidate


@dataclass(frozen=True)
class Strategy:
    name: str
    run: Callable[[SearchRun], Candidate | None]
    """Searches the tree; returns the leaf whose path is the answer (None: no thought)."""
    description: str
    """One line, shown in --help and the app's settings."""


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> Strategy:
    STRATEGIES[strategy.name] = strategy
    return strategy


def strategy_names() -> tuple[str, ...]:
    return tuple(STRATEGIES)


def get_strategy(name: str) -> Strategy:
    """The registered strategy called ``name``; SpecSearchError names the choices otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise SpecSearchError(f"unknown search {name!r}; choose from {', '.join(STRATEGIES)}") from None


for _strategy in (
    Strategy("beam", beam_search, "beam search: keep the beam_width best paths each step"),
    Strategy("mcts", mcts, "Monte Carlo tree search: UCT over PRM values, mcts_iterations per step"),
    Strategy("best-of-n", best_of_n, "n_solutions independent solutions, answer by PRM-weighted vote"),
    Strategy("dvts", dvts, "diverse verifier tree search: dvts_subtrees independent subtrees, greedy by PRM"),
):
    register_strategy(_strategy)

"""Monte Carlo tree search over thoughts (search = mcts).

Each step (one thought of the answer) runs ``mcts_iterations`` iterations from
the thought committed so far (at first, the question):

selection  descend by UCT, Q(child) + c * sqrt(ln N(parent) / N(child)), to a
           node without children (ties: the lower node id)
expansion  the method's generator writes that node's ``children`` thoughts,
           scored by the PRM; each starts with one visit worth its path score
           (the PRM's estimate of its value: no rollouts)
backup     the mean of the new children's values is added along the path to the
           question; a finished leaf selected again backs up its own value

then it commits to the most visited child (ties: the higher value, then the
lower id) and goes on from there until the committed thought ends a solution,
the token budget is spent or the search is cancelled.  The answer is the best
of every finished leaf in the tree by ``answer_selection`` (none finished: the
end of the most visited path).  With one iteration per step it is greedy by
PRM: each step expands the committed thought and commits to its best child,
as beam search with beam_width 1 does.

The seeds of a depth's k-th expansion follow those of the (k-1)-th
(``SearchState.first_child``), so expanding two nodes of one depth draws differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .events import BeamsSelected, ValuesBackedUp
from .search_run import SearchRun, check_question_fits, choose, expand_step, grown, mark_paths
from .search_state import Beam, Candidate, SearchState


@dataclass(eq=False)
class _Node:
    """A node of the MCTS tree: a thought (``cand``), or the question at the top."""

    beam: Beam  # what its children condition on
    depth: int
    parent: _Node | None = None
    cand: Candidate | None = None
    children: list[_Node] = field(default_factory=list)
    visits: int = 0
    total: float = 0.0

    @property
    def value(self) -> float:
        return self.total / self.visits if self.visits else 0.0

    @property
    def finished(self) -> bool:
        return self.cand is not None and self.cand.node.finished

    @property
    def id(self) -> int:
        return self.cand.node.id if self.cand is not None else -1

    def path(self) -> list[_Node]:
        """The nodes from the question down to this one."""
        out: list[_Node] = []
        node: _Node | None = self
        while node is not None:
            out.append(node)
            node = node.parent
        return out[::-1]


def mcts(run: SearchRun) -> Candidate | None:
    state, config = run.state, run.config
    check_question_fits(run, [run.root])
    top = root = _Node(run.root, 0)
    finished: list[Candidate] = []
    expansions: dict[int, int] = {}  # depth -> how many nodes of the depth before it were expanded
    while not (state.cancelled or root.finished or run.budget_spent()):
        for _ in range(config.mcts_iterations):
            if state.cancelled or run.budget_spent():
                break
            leaf = _select(root, config.mcts_exploration)
            if leaf.finished:
                _backup(state, leaf, leaf.cand.node.path_score, [], root.depth + 1)
                continue
            children = _expand(run, leaf, finished, expansions)
            if children:
                _backup(state, leaf, sum(c.value for c in children) / len(children), children, root.depth + 1)
            elif leaf.finished:  # no room in the context for its next thought: it ends here
                _backup(state, leaf, leaf.cand.node.path_score, [], root.depth + 1)
            else:
                break  # cancelled
        if state.cancelled or not root.children:
            break  # a cancelled step commits to nothing
        root = max(root.children, key=_commit_rank)
        _commit(state, root)
    return choose(finished, config.answer_selection) or _most_visited_leaf(top).cand


def _uct(child: _Node, parent: _Node, exploration: float) -> float:
    return child.value + exploration * math.sqrt(math.log(max(parent.visits, 1)) / child.visits)


def _select(node: _Node, exploration: float) -> _Node:
    while node.children:
        parent = node
        node = max(parent.children, key=lambda child: (_uct(child, parent, exploration), -child.id))
    return node


def _expand(run: SearchRun, leaf: _Node, finished: list[Candidate], expansions: dict[int, int]) -> list[_Node]:
    """``leaf``'s children, made by the generator and scored; none when cancelled or out of room
    (then ``leaf`` is a finished leaf in ``finished``)."""
    state, config = run.state, run.config
    depth = leaf.depth + 1
    state.first_child = expansions.get(depth, 0) * config.children
    expansions[depth] = expansions.get(depth, 0) + 1
    cands = expand_step(run, [leaf.beam], depth, [leaf.cand] if leaf.cand else [], finished)
    if not cands:
        return []
    with state.phase("select"):
        mark_paths(cands, depth, config)
        for c in cands:
            leaf.children.append(_Node(grown(c), depth, leaf, c, visits=1, total=c.node.path_score))
            if c.node.finished:
                finished.append(c)
    return leaf.children


def _backup(state: SearchState, leaf: _Node, value: float, new: list[_Node], step: int) -> None:
    """Add ``value`` along the path to ``leaf``; record and announce what changed."""
    path = leaf.path()
    for node in path:
        node.visits += 1
        node.total += value
    changed = [n for n in path + new if n.cand is not None]
    for n in changed:
        n.cand.node.visits, n.cand.node.value = n.visits, n.value
    visits = {n.id: n.visits for n in changed}
    values = {n.id: n.value for n in changed}
    state.step.visits.update(visits)
    state.step.values.update(values)
    state.emit(ValuesBackedUp(step, visits, values))


def _commit_rank(node: _Node) -> tuple[int, float, int]:
    return node.visits, node.value, -node.id


def _commit(state: SearchState, node: _Node) -> None:
    """The search goes on from ``node``: it is this step's kept thought."""
    node.cand.node.selected = True
    state.step.selected = [node.id]
    state.emit(BeamsSelected(node.depth, (node.id,), (node.id,) if node.finished else ()))
    state.publish_stats()


def _most_visited_leaf(node: _Node) -> _Node:
    while node.children:
        node = max(node.children, key=_commit_rank)
    return node

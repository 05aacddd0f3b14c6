"""A thought that only leads in to its next paragraph is continued into it (SearchConfig.join_lead_ins)."""

from __future__ import annotations

import pytest

from specsearch.core import generators
from specsearch.core.api import Solver
from specsearch.core.config import SearchConfig
from specsearch.core.text import leads_in

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


class TestLeadInRule:
    @pytest.mark.parametrize("thought", [
        "To find the total, we follow these steps:",
        "**Step 1: Count the eggs Claire eats in one day.**",
        "**Plan:**",
        "## Step 2",
        "The cost of the pens is:\n\\[\n4 \\times 3",
        "So the change is\n$$",
        "Let's check it in Python.\n```python\ndata = 200",
    ])
    def test_lead_ins(self, thought):
        assert leads_in(thought)

    @pytest.mark.parametrize("thought", [
        "4 pens cost 4 * 3 = 12 dollars.",
        "1. **First Month:**\n   The program had 60 downloads.",
        "\\[\n3 \\times 60 = 180\n\\]",
        "The answer is \\boxed{7}:",
        "",
        "Revenue: $12 per box, so 3 boxes make $36.",
        "```python\nprint(200 * 1.2)\n```",
    ])
    def test_steps(self, thought):
        assert not leads_in(thought)


def _config(**kw) -> SearchConfig:
    base = dict(method="ar", beam_width=1, children=1, temperature=0.0, max_step_tokens=60, seed=3)
    base.update(kw)
    return SearchConfig(**base)


@pytest.fixture(scope="module")
def solver(tiny):
    with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"], prm_kind="arith",
                batch_invariant=True) as s:
        yield s


@pytest.fixture(scope="module")
def delimiter(solver):
    """A character the tiny model writes often enough that its first two greedy thoughts both end at it."""
    text = solver.solve(QUESTION, _config(max_depth=1, max_step_tokens=80, delimiter="\x00")).nodes[0].text
    for ch in sorted(set(text), key=text.count, reverse=True):
        result = solver.solve(QUESTION, _config(max_depth=2, delimiter=ch, join_lead_ins=0))
        # both thoughts ended at the delimiter, not at the token budget
        if len(result.nodes) == 2 and all(0 < n.n_tokens < 60 for n in result.nodes):
            return ch
    pytest.skip("the tiny model writes no character often enough")


class TestJoining:
    def test_a_joined_thought_is_the_two_thoughts_it_joins(self, solver, delimiter, monkeypatch):
        # Greedy: the continuation starts from the same tokens the second step would.
        apart = solver.solve(QUESTION, _config(max_depth=2, delimiter=delimiter, join_lead_ins=0))
        monkeypatch.setattr(generators, "leads_in", lambda text: True)
        joined = solver.solve(QUESTION, _config(max_depth=1, delimiter=delimiter, join_lead_ins=1))
        first, second = apart.nodes
        assert len(joined.nodes) == 1
        assert joined.nodes[0].text == first.text + delimiter + second.text
        assert joined.nodes[0].n_tokens == first.n_tokens + second.n_tokens

    def test_zero_joins_keeps_every_delimiter(self, solver, delimiter, monkeypatch):
        apart = solver.solve(QUESTION, _config(max_depth=1, delimiter=delimiter, join_lead_ins=0))
        monkeypatch.setattr(generators, "leads_in", lambda text: True)
        kept = solver.solve(QUESTION, _config(max_depth=1, delimiter=delimiter, join_lead_ins=0))
        assert kept.nodes[0].text == apart.nodes[0].text

    def test_joining_stays_within_the_step_budget(self, solver, delimiter, monkeypatch):
        monkeypatch.setattr(generators, "leads_in", lambda text: True)
        result = solver.solve(QUESTION, _config(max_depth=1, delimiter=delimiter, join_lead_ins=5, max_step_tokens=40))
        assert result.nodes[0].n_tokens <= 40
        assert delimiter in result.nodes[0].text  # it did join

    def test_specsearch_drafts_and_regenerations_are_joined_alike(self, solver, delimiter, monkeypatch):
        # β = +inf: every draft rejected; the regenerated thoughts are sps's, joined the same way.
        monkeypatch.setattr(generators, "leads_in", lambda text: True)
        cfg = dict(max_depth=2, delimiter=delimiter, join_lead_ins=1)
        spec = solver.solve(QUESTION, _config(method="specsearch", threshold_mode="fixed", fixed_beta=float("inf"), **cfg))
        sps = solver.solve(QUESTION, _config(method="sps", **cfg))
        regenerated = [n.text for n in spec.nodes if n.fate in ("regenerated", "generated")]
        assert regenerated == [n.text for n in sps.nodes]
        assert any(delimiter in t for t in regenerated)

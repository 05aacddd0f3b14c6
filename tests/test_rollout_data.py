"""The rollout labeller of the drafter's solutions (tests/make_rollout_data.py)."""
from __future__ import annotations

from make_rollout_data import label_from_values


class TestLabelFromValues:
    def test_right_answer_makes_every_thought_good(self):
        # whatever the large model's rollouts did on the way
        assert label_from_values([0, 1, 0, 1], 3, right=True) == -1

    def test_thought_after_the_last_solvable_prefix_is_blamed(self):
        # solvable from the question and after thought 0; never again after thought 1
        assert label_from_values([1, 1, 0, 0, 0], 4, right=False) == 1
        # an early failure that a later prefix recovers from is not blamed: the last solvable prefix counts
        assert label_from_values([1, 0, 1, 0], 3, right=False) == 2

    def test_unlocated_errors_are_left_out(self):
        assert label_from_values([0, 0, 0, 0], 3, right=False) is None
        # solvable after every thought: the drafter stopped short, nothing it wrote was wrong
        assert label_from_values([0, 1, 1, 1], 3, right=False) is None

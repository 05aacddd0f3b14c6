"""Offline math tutoring: hints one step at a time, the learner's steps judged by
the reward model, the learner's answer checked for equivalence.  The wording
is kind on purpose.  No Textual imports here.

A step whose written arithmetic is wrong (core.arithmetic) is never approved,
whatever the reward model says, and never enters the working: hints continue
from the last step judged right.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from specsearch.core.answers import extract_answer, final_answer_present, is_equivalent
from specsearch.core.arithmetic import WrongEquation, check_step

STEP_OK = 0.5
"""A learner's step whose reward-model score reaches this is taken as right."""


@dataclass
class Verdict:
    ok: bool | None  # None: could not be decided
    message: str


@dataclass
class TutorSession:
    question: str
    reference: str | None = None  # the known answer (practice problems), else the model's own
    reference_is_model: bool = False
    source: str = "your question"
    steps: list[str] = field(default_factory=list)  # the working so far: accepted steps and hints
    turns: list[dict[str, Any]] = field(default_factory=list)  # for history

    def add_hint(self, text: str) -> Verdict:
        """The model's next step: added to the working (ok), or not -- none came (ok None), or its
        arithmetic is wrong (ok False: a hint must not teach a wrong sum)."""
        text = text.strip()
        if not text:
            message = "I couldn't come up with a next step here — maybe the solution is already complete?"
            self.turns.append({"kind": "hint", "text": "", "verdict": message})
            return Verdict(None, message)
        wrong = check_step(text)
        if wrong:
            message = (f"I came up with “{text}”, but its arithmetic is off ({_equations(wrong)}), so I've "
                       "left it out of your working. Try the step yourself, or press Ctrl+G again.")
            self.turns.append({"kind": "hint", "text": text, "ok": False, "verdict": message,
                               "arithmetic": [w.describe() for w in wrong]})
            return Verdict(False, message)
        self.steps.append(text)
        self.turns.append({"kind": "hint", "text": text})
        return Verdict(True, text)

    def check_arithmetic(self, step: str) -> Verdict | None:
        """Reject ``step`` at once if an equation in it is wrong (no model needed); None if none is."""
        wrong = check_step(step)
        return self._reject_arithmetic(step, wrong, None) if wrong else None

    def _reject_arithmetic(self, step: str, wrong: list[WrongEquation], score: float | None) -> Verdict:
        verdict = Verdict(False, f"✗ {_equations(wrong)} — have another look at that calculation. I've left this "
                                 "step out of your working; fix it, or press Ctrl+G for a hint.")
        self.turns.append({"kind": "step", "text": step, "score": score, "ok": False, "verdict": verdict.message,
                           "arithmetic": [w.describe() for w in wrong]})
        return verdict

    def judge_step(self, step: str, score: float) -> Verdict:
        """The reward model scored ``step`` (after ``self.steps``); wrong arithmetic overrides it."""
        wrong = check_step(step)
        if wrong:
            return self._reject_arithmetic(step, wrong, score)
        if score >= STEP_OK:
            self.steps.append(step.strip())
            verdict = Verdict(True, f"✓ That step looks right (reward model: {score:.2f}). "
                                    "I've added it to your working — keep going!")
        else:
            verdict = Verdict(False, f"✗ Hmm, I'm not sure about that step (reward model: {score:.2f}). "
                                     "Have another look at it, or ask me for a hint (Ctrl+G).")
        self.turns.append({"kind": "step", "text": step, "score": score, "ok": verdict.ok, "verdict": verdict.message})
        return verdict

    def check_answer(self, text: str) -> Verdict:
        """Compare the learner's answer with the reference (which must be set, or None: unknown)."""
        given = extract_answer(text) if final_answer_present(text) else text.strip()
        if self.reference is None:
            verdict = Verdict(None, "I couldn't work out the answer myself, so I can't check yours — sorry! "
                                    "Try a hint (Ctrl+G) to compare your working step by step.")
        elif is_equivalent(given, self.reference):
            verdict = Verdict(True, f"✓ Yes — {given} is correct. Well done!")
        else:
            verdict = Verdict(False, f"✗ Not quite — {given} isn't what I get. Check your last step, "
                                     "or press Ctrl+G for a hint.")
        if verdict.ok is not None and self.reference_is_model:
            verdict.message += " (Checked against the model's own solution, which can be wrong.)"
        self.turns.append({"kind": "answer", "text": text, "ok": verdict.ok, "verdict": verdict.message})
        return verdict


def _equations(wrong: list[WrongEquation]) -> str:
    """'20 − 12 = 8, not 9' (several joined with '; ')."""
    return "; ".join(w.describe() for w in wrong)


def practice_problem(rng: random.Random, dataset: str = "gsm8k") -> tuple[str, str, str]:
    """(question, answer, source) of a packaged problem."""
    from specsearch.core.datasets import load_dataset

    problems = load_dataset(dataset, None)
    problem = rng.choice(problems)
    source = problem.id if problem.id.startswith(dataset) else f"{dataset} #{problem.id}"
    return problem.question, problem.answer, source

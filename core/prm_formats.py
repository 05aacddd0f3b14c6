"""Trained PRMs whose verdict on a step is a token of a chat reply.

Each step of a path is a user turn; the model's reply to that turn starts with
a fixed prefix and its next token is the verdict.  Earlier steps are shown
with the good verdict as their reply, as in the models' training data, so the
input for step i is a prefix of the input for step i + 1 and all the steps of
a path are scored in one request with a position per step (siblings share
their common prefix through the engine's KV cache).

``chat-prm``  RLHFlow/Llama3.1-8B-PRM-Deepseek-Data and -Mistral-Data
              (github.com/RLHFlow/RLHF-Reward-Modeling, math-rm/).
``genprm``    GenPRM-1.5B / 7B / 32B in their direct-judgement mode
              (github.com/RyanLiu112/GenPRM, src/prm_evaluation/).

Math-Shepherd's tag format (kind ``step-tag``) is :class:`~.prm.StepTagPRM`.
"""

from __future__ import annotations

from typing import Sequence

from .engine import Engine, ScoreRequest
from .errors import SpecSearchError
from .prm import PRMKind, VerdictScoring, nested_requests, register_prm_kind


class ChatVerdictPRM(VerdictScoring):
    """Base of the chat formats: subclasses set the class attributes.

    The score of step i is P(good) / (P(good) + P(bad)) for the token after
    ``reply_prefix`` in the assistant's reply to step i's turn.  The verdict
    tokens are where the tokenizations of ``reply_prefix + good`` and
    ``reply_prefix + bad`` part, so a tokenizer that merges the prefix's last
    characters with the verdict (say "{Yes") is read at the right place.
    """

    kind = ""
    system: str | None = None
    question_joiner = " "
    """The first user turn is question + joiner + step 1."""
    reply_prefix = ""
    """Forced start of the assistant's reply, before the verdict."""
    good = "+"
    bad = "-"
    reply_suffix = ""
    """What follows the verdict in an earlier step's reply."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        if not engine.facts.chat_template:
            raise SpecSearchError(
                f"PRM kind {self.kind!r} needs the model's chat template, and {engine.name} has none"
            )
        good = engine.tokenize(self.reply_prefix + self.good, add_special=False)
        bad = engine.tokenize(self.reply_prefix + self.bad, add_special=False)
        k = 0
        while k < min(len(good), len(bad)) and good[k] == bad[k]:
            k += 1
        if k == len(good) or k == len(bad):
            raise SpecSearchError(
                f"PRM kind {self.kind!r} needs {self.good!r} and {self.bad!r} to start with different tokens, "
                f"but the vocabulary of {engine.name} tokenizes them alike"
            )
        self._prefix_tokens = good[:k]
        self._good, self._bad = [good[k]], [bad[k]]

    # ------------------------------------------------------------- input ---
    def messages(self, question: str, steps: Sequence[str]) -> list[dict[str, str]]:
        """The conversation whose next assistant reply judges the last step."""
        out = [{"role": "system", "content": self.system}] if self.system is not None else []
        for i, step in enumerate(steps):
            text = question.strip() + self.question_joiner + step.strip() if i == 0 else step.strip()
            if i:
                out.append({"role": "assistant", "content": self.reply_prefix + self.good + self.reply_suffix})
            out.append({"role": "user", "content": text})
        return out

    def tokens(self, question: str, steps: Sequence[str]) -> list[int]:
        """The input whose last token's logits hold the verdict on the last step."""
        text = self.engine.render_chat(self.messages(question, steps), add_generation_prompt=True)
        return self.engine.chat_text_tokens(text) + self._prefix_tokens

    def requests(self, question: str, steps: Sequence[str]) -> list[ScoreRequest]:
        """Requests scoring every step of ``steps`` (one, unless the template
        renders a conversation differently from its prefixes)."""
        token_lists = [self.tokens(question, steps[: i + 1]) for i in range(len(steps))]
        return nested_requests(token_lists, self._good + self._bad)

    # ----------------------------------------------------------- scoring ---


class ChatPRM(ChatVerdictPRM):
    """RLHFlow's Llama3.1-8B-PRM models, as in math-rm/prm_evaluate.py.

    Conversation: one user turn per step (the first is question + " " + step 1,
    steps stripped), each answered by the assistant with "+"; no system turn;
    rendered with the model's own chat template.  The score of step i is
    P("+") / (P("+") + P("-")) at the last token before the reply to turn i
    (the reference reads position -3 of the conversation ending in that
    reply: "+" and <|eot_id|> follow it).
    """

    kind = "chat-prm"


GENPRM_SYSTEM = (
    "You are a math teacher. Your task is to review and critique the paragraphs in solution directly. "
    "Output your judgement in the format of `\\boxed{Yes}` if the paragraph is correct, "
    "or `\\boxed{No}` if the paragraph is incorrect."
)


class GenPRM(ChatVerdictPRM):
    """GenPRM judging each step directly, without generating.

    GenPRM's evaluation code, with analysis and code verification off, puts
    this system prompt, one user turn per step (the first is question + "\\n"
    + step 1) and, as the reply to each earlier step, the model's own
    judgement ("<output>\\n**Judgement**: $\\boxed{Yes}$\\n</output>\\n" here,
    since the search keeps only steps it accepted).  It then generates from
    "<output>\\n**Judgement**: $\\boxed" and reads P(Yes) and P(No) where the
    verdict is written.

    Simplification: the full GenPRM first writes a chain-of-thought analysis
    and runs Python verification code before its verdict (and may vote over
    several samples); here nothing is generated: the verdict's probability is
    read right after the forced prefix, one forward pass per path.  Scores
    are therefore those of GenPRM's cheapest mode, not of its best one.
    """

    kind = "genprm"
    system = GENPRM_SYSTEM
    question_joiner = "\n"
    reply_prefix = "<output>\n**Judgement**: $\\boxed{"
    good = "Yes"
    bad = "No"
    reply_suffix = "}$\n</output>\n"


register_prm_kind(PRMKind(
    "chat-prm", lambda engine, head=None: ChatPRM(engine),
    "RLHFlow Llama3.1-8B-PRM style: a user turn per step; P(+) vs P(-) where the reply begins"))
register_prm_kind(PRMKind(
    "genprm", lambda engine, head=None: GenPRM(engine),
    "GenPRM judging directly: P(Yes) vs P(No) in \\boxed{} of the reply to each step"))

"""Text <-> tokens for a loaded GGUF vocabulary: what a local Engine and a remote
model (core.remote_model, which loads only the vocabulary) share, so prompts and
thoughts tokenize the same way on both paths."""

from __future__ import annotations

from . import llama_adapter as lla
from .chat_template import render_chat


class ModelText:
    """Tokenizing and chat rendering over ``self.vocab`` (lla.Vocab), ``self.facts``
    (lla.ModelFacts) and ``self.path`` (the GGUF file), which the subclass sets."""

    vocab: lla.Vocab
    facts: lla.ModelFacts
    path: str

    def tokenize(self, text: str, add_special: bool | None = None, parse_special: bool = True) -> list[int]:
        """Tokens of ``text``; ``add_special`` None: add BOS when the model asks for it."""
        if add_special is None:
            add_special = self.facts.add_bos
        return self.vocab.tokenize(text, add_special, parse_special)

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Format ``messages`` with the GGUF's own chat template."""
        return render_chat(
            self.facts.chat_template,
            messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.vocab.text(self.facts.bos) if self.facts.bos >= 0 else "",
            eos_token=self.vocab.text(self.facts.eos) if self.facts.eos >= 0 else "",
            model_name=self.path,
            # For a template stopped as hostile: llama.cpp's own rendering of the kind it names.
            fallback=lambda msgs, add: lla.builtin_chat(self.facts.chat_template, msgs, add),
        )

    def chat_tokens(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        return self.chat_text_tokens(self.render_chat(messages, add_generation_prompt))

    def chat_text_tokens(self, text: str) -> list[int]:
        """Tokens of a rendered chat: special tokens parsed, one BOS when the model
        asks for it (a template that writes the BOS itself would otherwise give two)."""
        tokens = self.tokenize(text, add_special=self.facts.add_bos)
        if len(tokens) >= 2 and tokens[0] == tokens[1] == self.facts.bos:
            del tokens[0]
        return tokens

    def is_eog(self, token: int) -> bool:
        return token in self.vocab.eog

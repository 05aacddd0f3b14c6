"""Tiny GGUF language models written with the ``gguf`` package, for tests.

A 2-layer llama-architecture model with random f32 weights and a byte-level
BPE vocabulary of a few hundred tokens (~450 KB, loads in milliseconds).  The
same seed writes byte-identical files; different seeds give a draft/target
pair with the same vocabulary; ``vocab_variant=1`` gives a different
vocabulary (for the incompatible-pair error).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from gguf import GGUFWriter, LlamaFileType, TokenType

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Merges learned from nothing in particular: common English / arithmetic pairs.
_MERGE_TEXT = [
    ("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("Ġ", "s"), ("e", "r"),
    ("Ġ", "w"), ("o", "n"), ("Ġ", "c"), ("r", "e"), ("Ġ", "b"), ("a", "t"), ("e", "n"),
    ("Ġ", "o"), ("i", "s"), ("Ġ", "m"), ("Ġ", "p"), ("o", "r"), ("Ġ", "f"), ("Ġ", "1"),
    ("Ġ", "2"), ("Ġ", "="), ("Ġ", "+"), ("Ċ", "Ċ"), ("Ġ", "$"), ("Ġ", "x"), ("a", "n"),
    ("Ġa", "nd"), ("n", "d"), ("Ġ", "i"), ("Ġi", "s"), ("Ġ", "y"), ("e", "s"), ("Ġy", "es"),
    ("Ġ", "n"), ("Ġn", "o"), ("Ġ", "d"), ("s", "t"), ("e", "d"),
]


def _bytes_to_unicode() -> list[str]:
    """GPT-2's reversible byte -> printable-unicode mapping, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    chars = {}
    extra = 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def tiny_vocab(vocab_variant: int = 0) -> tuple[list[str], list[int], list[str]]:
    byte_tokens = _bytes_to_unicode()
    merges = list(_MERGE_TEXT)
    if vocab_variant:
        # A different vocabulary: fewer merges and extra tokens of its own.
        merges = merges[: len(merges) // 2] + [("Ġ", "z"), ("z", "z")]
    tokens = list(byte_tokens)
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    specials = ["<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    if vocab_variant:
        specials.append("<|variant|>")
    types = [TokenType.NORMAL] * len(tokens) + [TokenType.CONTROL] * len(specials)
    tokens += specials
    return tokens, [int(t) for t in types], [f"{a} {b}" for a, b in merges]


def write_tiny_model(
    path: str | Path,
    seed: int,
    *,
    vocab_variant: int = 0,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    n_layer: int = 2,
    context_length: int = 2048,
    logit_scale: float = 3.0,
    name: str | None = None,
    extra_tokens: Sequence[str] = (),
    chat_template: str = CHATML_TEMPLATE,
    printable: bool = False,
) -> Path:
    """Write a tiny llama GGUF to ``path`` and return the path.

    ``extra_tokens`` are appended to the vocabulary as special (control)
    tokens, e.g. a PRM's step tag; without them the file is unchanged.
    ``chat_template`` replaces the ChatML template (say, a hostile one).
    ``printable`` makes the model write only printable ASCII, newlines and its
    end token (a text-only server cannot return other bytes as they are)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    tokens, types, merges = tiny_vocab(vocab_variant)
    tokens += list(extra_tokens)
    types += [int(TokenType.CONTROL)] * len(extra_tokens)
    n_vocab = len(tokens)
    head_dim = n_embd // n_head

    w = GGUFWriter(str(path), "llama")
    w.add_name(name or f"tiny-llama-seed{seed}")
    w.add_file_type(LlamaFileType.ALL_F32)
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index("<s>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_add_bos_token(False)
    w.add_chat_template(chat_template)

    def normal(*shape: int, scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    embd = normal(n_vocab, n_embd, scale=1.0)
    if printable:
        # Dimension 0 of every embedding is large, so it stays large in the normed final
        # state; rows of the tokens not to write read it with a large negative weight,
        # the others not at all.
        embd[:, 0] = 4.0
    w.add_tensor("token_embd.weight", embd)
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", normal(n_embd, n_embd, scale=n_embd**-0.5))
        w.add_tensor(p + "attn_k.weight", normal(n_head_kv * head_dim, n_embd, scale=n_embd**-0.5))
        w.add_tensor(p + "attn_v.weight", normal(n_head_kv * head_dim, n_embd, scale=n_embd**-0.5))
        w.add_tensor(p + "attn_output.weight", normal(n_embd, n_embd, scale=n_embd**-0.5))
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", normal(n_ff, n_embd, scale=n_embd**-0.5))
        w.add_tensor(p + "ffn_up.weight", normal(n_ff, n_embd, scale=n_embd**-0.5))
        w.add_tensor(p + "ffn_down.weight", normal(n_embd, n_ff, scale=n_ff**-0.5))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    output = normal(n_vocab, n_embd, scale=logit_scale * n_embd**-0.5)  # drawn last: files stay as they were
    if printable:
        output[:, 0] = np.where(_printable_mask(tokens, tokens.index("<|im_end|>")), 0.0, -40.0)
    w.add_tensor("output.weight", output)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _printable_mask(tokens: list[str], eos: int) -> np.ndarray:
    """Tokens made of printable ASCII and newlines only (in GPT-2's byte spelling), and the end token."""
    byte_of = {c: b for b, c in enumerate(_bytes_to_unicode())}
    ok = np.zeros(len(tokens), dtype=bool)
    for i, t in enumerate(tokens):
        ok[i] = i == eos or (all(c in byte_of for c in t) and all(32 <= byte_of[c] < 127 or byte_of[c] == 10 for c in t))
    return ok


def token_text(engine, tokens: Sequence[int]) -> str:
    """The text of ``tokens`` (piece by piece, as the engine's vocabulary spells them)."""
    return b"".join(engine.vocab.piece(t) for t in tokens).decode("utf-8", errors="replace")

"""The input layouts of the trained PRM formats, token for token, on tiny models.

step-tag (Math-Shepherd), chat-prm (RLHFlow Llama3.1-8B-PRM) and genprm
(GenPRM, direct judgement): where each step's score is read, that scores are
probabilities, that a path scored at once equals its prefixes scored as
siblings, and the errors for models that cannot carry a format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter, TokenType

from specsearch.core.engine import Engine, LoadOptions
from specsearch.core.errors import SpecSearchError
from specsearch.core.prm import StepTagPRM, make_prm, prm_kind_names
from specsearch.core.prm_formats import GENPRM_SYSTEM, ChatPRM, ChatVerdictPRM, GenPRM
from tiny_models import token_text

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
STEPS = ["He buys 4, so 3 + 4 = 7.", "So he has 7 apples.", "The answer is 7."]
KINDS = ("step-tag", "chat-prm", "genprm")


def load(path: Path) -> Engine:
    # f32 KV cache: logits do not depend on how a sequence was batched.
    return Engine(path, LoadOptions(n_ctx=2048, n_seq_max=8, batch_invariant=True))


@pytest.fixture(scope="module")
def engine(tiny):
    with load(tiny["target"]) as eng:
        yield eng


def write_spm_model(src: Path, dst: Path, pieces: list[str]) -> Path:
    """A copy of the tiny model ``src`` with a sentencepiece ("llama") vocabulary
    of the same size, as Mistral's: BOS added, a space prefixed to the text, no
    chat template.  Earlier pieces merge first."""
    reader = GGUFReader(str(src))
    n_vocab = len(reader.fields["tokenizer.ggml.tokens"].contents())
    tokens = ["<unk>", "<s>", "</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    # byte fallback: llama.cpp aborts on a character no piece or byte token covers
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TokenType.BYTE] * 256
    scores = [0.0] * len(tokens) + [-float(i) for i in range(len(pieces))]
    tokens += pieces
    types += [TokenType.NORMAL] * len(pieces)
    while len(tokens) < n_vocab:
        tokens.append(f"<unused{len(tokens)}>")
        types.append(TokenType.UNUSED)
        scores.append(-1e4)
    writer = GGUFWriter(str(dst), "llama")
    for key, field in reader.fields.items():
        if key.startswith(("GGUF.", "tokenizer.")) or key == "general.architecture":
            continue
        writer.add_key_value(key, field.contents(), field.types[0], field.types[1] if len(field.types) > 1 else None)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types([int(t) for t in types])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_space_prefix(True)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, np.array(tensor.data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


SPM_PIECES = ["▁", "▁+", "▁-", "▁к", "и", "▁Step", "▁1", "▁2", "▁3", ":", "▁=", "▁he", "▁is", "▁7", "."]


@pytest.fixture(scope="module")
def spm_path(tiny, tmp_path_factory) -> Path:
    return write_spm_model(tiny["target"], tmp_path_factory.mktemp("spm") / "spm.gguf", SPM_PIECES)


def two_way(logp_row: np.ndarray) -> float:
    p = np.exp(logp_row)
    return float(p[0] / (p[0] + p[1]))


# ------------------------------------------------------------- registry ---
def test_the_formats_are_registered_kinds(engine):
    assert set(KINDS) <= set(prm_kind_names())
    assert isinstance(make_prm("step-tag", engine), StepTagPRM)
    assert isinstance(make_prm("chat-prm", engine), ChatPRM)
    assert isinstance(make_prm("genprm", engine), GenPRM)


# --------------------------------------------------------- Math-Shepherd ---
class TestStepTag:
    def test_input_is_the_model_card_layout(self, engine):
        prm = make_prm("step-tag", engine)
        expected = f"{QUESTION} Step 1: {STEPS[0]} ки\nStep 2: {STEPS[1]} ки\nStep 3: {STEPS[2]} ки"
        assert prm.text(QUESTION, STEPS) == expected
        (req,) = prm.requests(QUESTION, STEPS)
        # tokenized whole, as the card's tokenizer.encode(f"{question} {output}")
        assert list(req.tokens) == engine.tokenize(expected)
        # the card scores where input_id == step_tag_id = encode("ки")[-1]
        tag_id = engine.tokenize("ки")[-1]
        assert list(req.positions) == [i for i, t in enumerate(req.tokens) if t == tag_id]
        for i, pos in enumerate(req.positions):
            assert token_text(engine, req.tokens[: pos + 1]) == prm.text(QUESTION, STEPS[: i + 1])
        assert list(req.candidates) == [engine.tokenize("+", add_special=False)[0],
                                        engine.tokenize("-", add_special=False)[0]]

    def test_steps_go_on_one_line_without_tags(self, engine):
        prm = make_prm("step-tag", engine)
        text = prm.text("Q ки?\nR\n", ["a\nb", "  c ки d  ", ""])
        assert text == "Q ?\nR Step 1: a b ки\nStep 2: c d ки\nStep 3: ки"

    def test_scores_are_p_plus_at_each_tag(self, engine, tiny):
        prm = make_prm("step-tag", engine)
        scores = prm.score(QUESTION, STEPS)
        (req,) = prm.requests(QUESTION, STEPS)
        with load(tiny["target"]) as fresh:
            rows = fresh.score([req], reuse=False)[0]
        assert scores == pytest.approx([two_way(r) for r in rows], abs=1e-5)

    def test_sentencepiece_input_is_tokenized_whole(self, spm_path):
        with load(spm_path) as eng:
            prm = StepTagPRM(eng)
            (req,) = prm.requests(QUESTION, STEPS)
            text = prm.text(QUESTION, STEPS)
            assert list(req.tokens) == eng.tokenize(text)
            assert list(req.positions) == [i for i, t in enumerate(req.tokens) if t == eng.tokenize("ки")[-1]]
            # the card's candidates encode("+ -")[1:]: "▁+" and "▁-" for a sentencepiece vocabulary
            assert list(req.candidates) == eng.tokenize("+ -")[1:]
            assert [eng.vocab.piece(t) for t in req.candidates] == [b" +", b" -"]
            scores = prm.score(QUESTION, STEPS)
            assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)

    def test_pieces_tokenized_apart_would_differ_on_sentencepiece(self, spm_path):
        # why the input is tokenized whole: a piece on its own gets a leading "▁"
        with load(spm_path) as eng:
            whole = eng.tokenize("a ки\nStep 2:", add_special=False)
            apart = eng.tokenize("a ки", add_special=False) + eng.tokenize("\nStep 2:", add_special=False)
            assert whole != apart

    def test_verdict_tokens_that_tokenize_alike_are_refused(self, engine):
        with pytest.raises(SpecSearchError, match=r"'\+' and '\+ ' to be different tokens.*tiny-llama-seed1"):
            StepTagPRM(engine, good_token="+", bad_token="+ ")


# ------------------------------------------------------------ chat-prm ---
class TestChatPRM:
    def reference_conversation(self, steps):
        """math-rm/prm_evaluate.py: user turns, each answered with "+"."""
        conv = []
        for k, step in enumerate(steps):
            conv.append({"role": "user", "content": f"{QUESTION} {step}" if k == 0 else step})
            conv.append({"role": "assistant", "content": "+"})
        return conv

    def test_each_position_predicts_the_plus_of_its_turn(self, engine):
        prm = make_prm("chat-prm", engine)
        (req,) = prm.requests(QUESTION, STEPS)
        full = engine.chat_text_tokens(engine.render_chat(self.reference_conversation(STEPS),
                                                           add_generation_prompt=False))
        plus, minus = engine.tokenize("+", add_special=False)[0], engine.tokenize("-", add_special=False)[0]
        assert list(req.candidates) == [plus, minus]
        assert list(req.tokens) == full[: len(req.tokens)]
        assert len(req.positions) == len(STEPS)
        assert [full[p + 1] for p in req.positions] == [plus] * len(STEPS)
        # the reply begins after the template's assistant header
        header = engine.tokenize("<|im_start|>assistant\n", add_special=False)
        for p in req.positions:
            assert list(req.tokens[p + 1 - len(header) : p + 1]) == header

    def test_the_conversation_has_no_system_turn(self, engine):
        msgs = make_prm("chat-prm", engine).messages(QUESTION, STEPS)
        assert msgs == self.reference_conversation(STEPS)[:-1]

    def test_scores_are_p_plus_where_the_reply_begins(self, engine, tiny):
        prm = make_prm("chat-prm", engine)
        scores = prm.score(QUESTION, STEPS)
        with load(tiny["target"]) as fresh:
            rows = fresh.score(prm.requests(QUESTION, STEPS), reuse=False)[0]
        assert scores == pytest.approx([two_way(r) for r in rows], abs=1e-5)
        assert len(set(np.round(scores, 6))) == 3


# -------------------------------------------------------------- GenPRM ---
class TestGenPRM:
    def test_conversation_follows_the_evaluation_code(self, engine):
        msgs = make_prm("genprm", engine).messages(QUESTION, STEPS[:2])
        verdict = "<output>\n**Judgement**: $\\boxed{Yes}$\n</output>\n"
        assert msgs == [
            {"role": "system", "content": GENPRM_SYSTEM},
            {"role": "user", "content": f"{QUESTION}\n{STEPS[0]}"},
            {"role": "assistant", "content": verdict},
            {"role": "user", "content": STEPS[1]},
        ]
        assert "`\\boxed{Yes}` if the paragraph is correct" in GENPRM_SYSTEM

    def test_the_verdict_is_read_after_the_forced_boxed_prefix(self, engine):
        prm = make_prm("genprm", engine)
        (req,) = prm.requests(QUESTION, STEPS)
        assert GenPRM.reply_prefix == "<output>\n**Judgement**: $\\boxed{"
        prefix = "<|im_start|>assistant\n" + GenPRM.reply_prefix
        whole = engine.render_chat(prm.messages(QUESTION, STEPS), add_generation_prompt=True) + GenPRM.reply_prefix
        assert list(req.tokens) == engine.chat_text_tokens(whole)
        prefix_tokens = engine.tokenize(prefix, add_special=False)
        for p in req.positions:
            assert list(req.tokens[p + 1 - len(prefix_tokens) : p + 1]) == prefix_tokens
        for p in req.positions[:-1]:  # an earlier step's reply goes on with its verdict
            assert token_text(engine, req.tokens[p + 1 : p + 16]).startswith("Yes}$\n</output>")
        yes = engine.tokenize("{Yes", add_special=False)
        no = engine.tokenize("{No", add_special=False)
        assert list(req.candidates) == [yes[1], no[1]]  # "{" is its own token in this vocabulary

    def test_scores_are_p_yes(self, engine, tiny):
        prm = make_prm("genprm", engine)
        scores = prm.score(QUESTION, STEPS)
        with load(tiny["target"]) as fresh:
            rows = fresh.score(prm.requests(QUESTION, STEPS), reuse=False)[0]
        assert scores == pytest.approx([two_way(r) for r in rows], abs=1e-5)


# --------------------------------------------------------- all formats ---
@pytest.mark.parametrize("kind", KINDS)
def test_one_probability_per_step(engine, kind):
    prm = make_prm(kind, engine)
    for steps in (STEPS[:1], STEPS):
        scores = prm.score(QUESTION, steps)
        assert len(scores) == len(steps)
        assert all(0.0 <= s <= 1.0 for s in scores)
    assert prm.score(QUESTION, []) == []
    assert prm.score_last(QUESTION, []) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_path_scored_at_once_equals_its_prefixes_scored_as_siblings(engine, kind):
    prm = make_prm(kind, engine)
    whole = prm.score(QUESTION, STEPS)
    one_by_one = [prm.score_last(QUESTION, [STEPS[: i + 1]])[0] for i in range(len(STEPS))]
    siblings = prm.score_last(QUESTION, [STEPS[:1], STEPS[:2], STEPS])
    assert whole == pytest.approx(one_by_one, abs=1e-5)
    assert whole == pytest.approx(siblings, abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_sibling_steps_change_only_their_own_score(engine, kind):
    prm = make_prm(kind, engine)
    a = prm.score(QUESTION, [STEPS[0], "So he has 7 apples."])
    b = prm.score(QUESTION, [STEPS[0], "So he has 8 apples."])
    assert a[0] == pytest.approx(b[0], abs=1e-5)
    assert a[1] != pytest.approx(b[1], abs=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_path_is_refused(engine, kind):
    with pytest.raises(SpecSearchError, match="at least one step"):
        make_prm(kind, engine).score_last(QUESTION, [STEPS[:1], []])


def test_chat_verdicts_that_tokenize_alike_are_refused(engine):
    class YesOrYesPlease(GenPRM):
        kind = "test"
        bad = "Yes please"

    with pytest.raises(SpecSearchError, match="'Yes' and 'Yes please' to start with different tokens"):
        YesOrYesPlease(engine)


@pytest.mark.parametrize("kind", ("chat-prm", "genprm"))
def test_chat_formats_need_a_chat_template(spm_path, kind):
    with load(spm_path) as eng:
        assert eng.facts.chat_template is None
        with pytest.raises(SpecSearchError, match=f"{kind}.*chat template.*tiny-llama-seed1 has none"):
            make_prm(kind, eng)


def test_inputs_that_do_not_nest_are_scored_one_request_per_step(engine):
    class CountingSystem(ChatVerdictPRM):
        """A system turn that names the number of steps: no input is a prefix of the next."""

        kind = "test"

        def messages(self, question, steps):
            return [{"role": "system", "content": f"{len(steps)} steps"}, *super().messages(question, steps)]

    prm = CountingSystem(engine)
    reqs = prm.requests(QUESTION, STEPS)
    assert [list(r.positions) for r in reqs] == [[len(r.tokens) - 1] for r in reqs]
    assert len(reqs) == len(STEPS)
    one_by_one = [prm.score_last(QUESTION, [STEPS[: i + 1]])[0] for i in range(len(STEPS))]
    assert prm.score(QUESTION, STEPS) == pytest.approx(one_by_one, abs=1e-5)


def test_chat_tokens_carry_one_bos(spm_path):
    with load(spm_path) as eng:
        bos = eng.facts.bos
        assert eng.facts.add_bos
        assert eng.tokenize("<s> hi")[:2] == [bos, bos]  # what tokenizing a template's own BOS gives
        assert eng.chat_text_tokens("<s> hi") == eng.tokenize("<s> hi")[1:]
        assert eng.chat_text_tokens("hi")[:1] == [bos]
        assert eng.chat_text_tokens("hi").count(bos) == 1


# -------------------------------------------------------------- catalog ---
def test_catalog_prms_name_the_kind_they_were_trained_for():
    from specsearch.models.recommended import catalog

    prms = [e for e in catalog() if e.role == "prm"]
    assert {e.prm_kind for e in prms} >= set(KINDS) - {"genprm"} | {"head"}
    for e in prms:
        assert f"--prm-kind {e.prm_kind}" in e.notes
        assert e.to_dict()["prm_kind"] == e.prm_kind
        if e.is_gguf:
            assert e.prm_kind in prm_kind_names()
        else:  # upstream weights of a value-head PRM: converted, not pulled as is
            assert e.prm_kind == "head"
            assert "convert" in e.notes
    assert all(e.prm_kind is None for e in catalog() if e.role != "prm")

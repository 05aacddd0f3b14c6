"""Published value-head PRMs (Skywork-o1-Open-PRM, Qwen2.5-Math-PRM) converted and run as heads, on tiny models."""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from specsearch.cli.main import main as cli_main
from specsearch.core.engine import Engine, HiddenRequest, LoadOptions
from specsearch.core.prm import make_prm
from specsearch.core.prm_head import (
    QWEN_PRM_SYSTEM,
    Head,
    HeadError,
    HeadPRM,
    file_sha256,
    qwen_math_prm_layout,
    skywork_layout,
)
from specsearch.core.prm_heads_convert import WeightsError, convert_head, read_tensors
from tiny_models import token_text, write_tiny_model

QUESTION = "the cat has 12 mats and 2 more"
STEPS = ["the cat is on the mat", "12 + 2 = 14 mats\nso 14", "yes\n\nthe answer is 14"]


# ------------------------------------------------------------- helpers ---
def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str = "F32") -> Path:
    """A safetensors file written from the format's description (8-byte length, JSON header, raw bytes)."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.asarray(arr, dtype=np.float32)
        if dtype == "BF16":
            raw = (arr.view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            raw = arr.astype({"F32": "<f4", "F16": "<f2"}[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps({"__metadata__": {"format": "pt"}, **header}).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    return path


def as_stored(arr: np.ndarray, dtype: str) -> np.ndarray:
    """The float32 values a reader must return for ``arr`` stored as ``dtype``."""
    arr = np.asarray(arr, dtype=np.float32)
    if dtype == "BF16":
        return ((arr.view(np.uint32) >> 16) << 16).view(np.float32)
    return arr.astype({"F32": np.float32, "F16": np.float16}[dtype]).astype(np.float32)


def state_at_ends(engine: Engine, layout) -> np.ndarray:
    return engine.hidden_states([HiddenRequest(layout.tokens, layout.ends)], reuse=False)[0].hidden.astype(np.float64)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def convert_args(kind: str, weights: Path, backbone: Path, out: Path, *extra: str) -> list[str]:
    return ["prm", "convert-head", "--kind", kind, "--weights", str(weights), "--backbone", str(backbone),
            "--out", str(out), *extra]


def skywork_weights(hidden: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"v_head.summary.weight": rng.normal(0, 0.2, (1, hidden)), "v_head.summary.bias": np.array([0.3])}


def qwen_weights(hidden: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "score.0.weight": rng.normal(0, hidden**-0.5, (hidden, hidden)), "score.0.bias": rng.normal(0, 0.1, hidden),
        "score.2.weight": rng.normal(0, 0.5, (2, hidden)), "score.2.bias": np.array([0.1, -0.2]),
    }


# ------------------------------------------------------------ fixtures ---
@pytest.fixture(scope="module")
def engine(tiny) -> Engine:
    with Engine(tiny["target"], LoadOptions(n_ctx=1024, batch_invariant=True)) as e:
        yield e


@pytest.fixture(scope="module")
def qwen_backbone(tmp_path_factory) -> Path:
    """A tiny model whose vocabulary has Qwen2.5-Math-PRM's step tag as one special token."""
    return write_tiny_model(tmp_path_factory.mktemp("qprm") / "qprm.gguf", 1, extra_tokens=["<extra_0>"])


@pytest.fixture(scope="module")
def qwen_engine(qwen_backbone) -> Engine:
    with Engine(qwen_backbone, LoadOptions(n_ctx=1024, batch_invariant=True)) as e:
        yield e


# -------------------------------------------------------------- layouts ---
class TestLayouts:
    def test_skywork_layout_is_skyworks_prepare_input(self, engine):
        """Skywork's procedure, written out: BOS text + problem + "\\n" encoded together; the
        response split at "\\n", each piece encoded alone and followed by the "\\n" token, whose
        positions are flagged.  Each step's reward is the flag at its last line."""
        nl = engine.tokenize("\n", add_special=False)[-1]
        bos_text = engine.vocab.text(engine.facts.bos)
        ids = engine.tokenize(bos_text + QUESTION + "\n", add_special=False)
        flags = []
        for piece in "\n".join(STEPS).split("\n"):
            ids += (engine.tokenize(piece, add_special=False) if piece else []) + [nl]
            flags.append(len(ids) - 1)
        lay = skywork_layout(engine, QUESTION, STEPS, {})
        assert lay.tokens == ids
        lines_per_step = [s.count("\n") + 1 for s in STEPS]
        assert lay.ends == [flags[i - 1] for i in np.cumsum(lines_per_step)]
        assert all(lay.tokens[e] == nl for e in lay.ends)
        assert lay.tokens[0] == engine.facts.bos
        assert lay.starts == [len(engine.tokenize(bos_text + QUESTION + "\n", add_special=False))] + [
            e + 1 for e in lay.ends[:-1]]

    def test_qwen_layout_is_the_model_card_conversation(self, qwen_engine):
        """The card renders system/user/assistant("<extra_0>".join(steps) + "<extra_0>") with the
        chat template, tokenises it whole and reads every <extra_0>; the layout is that, token for token."""
        steps = [s.replace("\n\n", " ") for s in STEPS]
        tag = qwen_engine.tokenize("<extra_0>", add_special=False)
        assert len(tag) == 1
        text = qwen_engine.render_chat([
            {"role": "system", "content": QWEN_PRM_SYSTEM}, {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"},
        ], add_generation_prompt=False)
        full = qwen_engine.tokenize(text, add_special=qwen_engine.facts.add_bos)
        lay = qwen_math_prm_layout(qwen_engine, QUESTION, steps, {})
        assert lay.tokens == full[: len(lay.tokens)]
        assert lay.ends == [i for i, t in enumerate(full) if t == tag[0]]
        assert token_text(qwen_engine, lay.tokens[lay.starts[1] : lay.ends[1]]) == steps[1]

    def test_qwen_layout_needs_the_step_tag_as_one_token(self, engine):
        with pytest.raises(HeadError, match="no single token for it"):
            qwen_math_prm_layout(engine, QUESTION, STEPS, {})


# ----------------------------------------------------------- conversion ---
class TestConvertedHeads:
    def test_skywork_head_scores_are_sigmoid_of_the_value_head(self, engine, tiny, tmp_path, capsys):
        weights = skywork_weights(engine.facts.n_embd)
        h = engine.facts.n_embd
        others = {"model.norm.weight": np.ones(h), "lm_head.weight": np.zeros((3, h))}  # read past, not loaded
        src = write_safetensors(tmp_path / "model.safetensors", {**others, **weights})
        out = tmp_path / "skywork-head.npz"
        code, stdout, _ = run_cli(convert_args("skywork", src, tiny["target"], out, "--json"), capsys)
        assert code == 0
        summary = json.loads(stdout)
        assert summary["layers"] == [[engine.facts.n_embd, 1]] and summary["hidden_size"] == engine.facts.n_embd
        head = Head.load(out)
        assert head.backbone_sha256 == file_sha256(tiny["target"]) and head.prompt_format == "skywork"
        prm = HeadPRM(engine, head)
        hidden = state_at_ends(engine, skywork_layout(engine, QUESTION, STEPS, head.meta))
        z = hidden @ weights["v_head.summary.weight"][0] + weights["v_head.summary.bias"][0]
        np.testing.assert_allclose(prm.score(QUESTION, STEPS), 1 / (1 + np.exp(-z)), atol=1e-4)
        last = prm.score_last(QUESTION, [STEPS[: i + 1] for i in range(len(STEPS))])
        np.testing.assert_allclose(last, 1 / (1 + np.exp(-z)), atol=1e-4)

    @pytest.mark.parametrize("dtype", ["F32", "BF16"])
    def test_qwen_head_scores_are_softmax_of_the_mlp(self, qwen_engine, qwen_backbone, tmp_path, capsys, dtype):
        h = qwen_engine.facts.n_embd
        weights = qwen_weights(h, seed=1)
        src = write_safetensors(tmp_path / "model.safetensors", weights, dtype)
        out = tmp_path / "qwen-head.npz"
        code, _, _ = run_cli(convert_args("qwen-math-prm", src, qwen_backbone, out), capsys)
        assert code == 0
        prm = make_prm("head", qwen_engine, head=str(out))  # through the registered kind
        steps = ["the cat is on the mat", "12 + 2 = 14 mats", "yes the answer is 14"]
        hidden = state_at_ends(qwen_engine, qwen_math_prm_layout(qwen_engine, QUESTION, steps, {}))
        w = {k: as_stored(v, dtype).astype(np.float64) for k, v in weights.items()}
        inner = np.maximum(hidden @ w["score.0.weight"].T + w["score.0.bias"], 0)
        logits = inner @ w["score.2.weight"].T + w["score.2.bias"]
        softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(prm.score(QUESTION, steps), softmax[:, 1], atol=1e-4)

    @pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
    def test_tensors_read_back_in_every_float_dtype(self, tmp_path, dtype):
        arr = np.random.default_rng(3).normal(size=(3, 5)) * 7
        src = write_safetensors(tmp_path / "x.safetensors", {"a": np.zeros(2), "b": arr}, dtype)
        got = read_tensors(src, ["b"])["b"]
        assert got.dtype == np.float32 and got.shape == (3, 5)
        np.testing.assert_array_equal(got, as_stored(arr, dtype))

    def test_sharded_checkpoint_by_index_and_by_folder(self, engine, tiny, tmp_path):
        weights = skywork_weights(engine.facts.n_embd, seed=5)
        (tmp_path / "ckpt").mkdir()
        write_safetensors(tmp_path / "ckpt" / "model-00001-of-00002.safetensors",
                          {"v_head.summary.weight": weights["v_head.summary.weight"]})
        write_safetensors(tmp_path / "ckpt" / "model-00002-of-00002.safetensors",
                          {"v_head.summary.bias": weights["v_head.summary.bias"]})
        index = {"weight_map": {"v_head.summary.weight": "model-00001-of-00002.safetensors",
                                "v_head.summary.bias": "model-00002-of-00002.safetensors"}}
        (tmp_path / "ckpt" / "model.safetensors.index.json").write_text(json.dumps(index))
        for source in (tmp_path / "ckpt" / "model.safetensors.index.json", tmp_path / "ckpt"):
            head = convert_head("skywork", source, tiny["target"])
            np.testing.assert_allclose(head.layers[0][0][:, 0], weights["v_head.summary.weight"][0], rtol=1e-6)
            np.testing.assert_allclose(head.layers[0][1], weights["v_head.summary.bias"], rtol=1e-6)

    def test_prefix_names_the_head_under_another_name(self, engine, tiny, tmp_path, capsys):
        weights = {f"pretrained_model.{k}": v for k, v in skywork_weights(engine.facts.n_embd).items()}
        src = write_safetensors(tmp_path / "wrapped.safetensors", weights)
        out = tmp_path / "h.npz"
        code, _, err = run_cli(convert_args("skywork", src, tiny["target"], out), capsys)
        assert code == 2 and "--prefix pretrained_model.v_head.summary." in err
        args = convert_args("skywork", src, tiny["target"], out, "--prefix", "pretrained_model.v_head.summary.")
        code, _, _ = run_cli(args, capsys)
        assert code == 0 and Head.load(out).meta["tensors"][0] == "pretrained_model.v_head.summary.weight"


# --------------------------------------------------------------- errors ---
def _zip_checkpoint(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"v_head.summary.weight": [0.0]}, protocol=2))
    return path


def _legacy_checkpoint(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"v_head.summary.weight": [0.0]}, protocol=2))
    return path


def _truncated(path: Path) -> Path:
    data = write_safetensors(path, skywork_weights(64)).read_bytes()
    path.write_bytes(data[:-40])
    return path


def _int8(path: Path) -> Path:
    header = json.dumps({"v_head.summary.weight": {"dtype": "I8", "shape": [1, 64], "data_offsets": [0, 64]},
                         "v_head.summary.bias": {"dtype": "F32", "shape": [1], "data_offsets": [64, 68]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(68))
    return path


BAD_WEIGHTS = {
    "missing tensors": (lambda p: write_safetensors(p / "m.safetensors", {"other.weight": np.zeros(3)}),
                        ["lacks tensor(s) v_head.summary.weight, v_head.summary.bias", "it has: other.weight"]),
    "wrong width": (lambda p: write_safetensors(p / "w.safetensors", {
        "v_head.summary.weight": np.zeros((1, 65)), "v_head.summary.bias": np.zeros(1)}),
        ["v_head.summary.weight has shape [1, 65], expected [1, 64]", "hidden size 64"]),
    "pytorch zip": (lambda p: _zip_checkpoint(p / "pytorch_model.bin"),
                    ["is a PyTorch checkpoint, not safetensors", "torch.load(", "safetensors.torch import save_file",
                     "k.startswith('v_head.summary.')", "prm-head.safetensors"]),
    "pytorch pickle": (lambda p: _legacy_checkpoint(p / "old.pt"), ["is a PyTorch checkpoint"]),
    "pytorch folder": (lambda p: (_zip_checkpoint(p / "pytorch_model.bin"), p)[1], ["is a PyTorch checkpoint"]),
    "not safetensors": (lambda p: (p / "x.safetensors").write_bytes(b"GGUF" + bytes(100)) and p / "x.safetensors",
                        ["is not a safetensors file"]),
    "bad json": (lambda p: (p / "j.safetensors").write_bytes(struct.pack("<Q", 5) + b"{nope") and p / "j.safetensors",
                 ["header is not valid JSON"]),
    "missing file": (lambda p: p / "absent.safetensors", ["weights file not found"]),
    "truncated": (lambda p: _truncated(p / "t.safetensors"), ["truncated"]),
    "int8": (lambda p: _int8(p / "i.safetensors"), ["has dtype I8; supported: F32, F16, BF16"]),
}


@pytest.mark.parametrize("case", list(BAD_WEIGHTS))
def test_bad_weights_are_one_line_errors(case, tiny, tmp_path, capsys):
    make, expected = BAD_WEIGHTS[case]
    src = make(tmp_path)
    code, out, err = run_cli(convert_args("skywork", src, tiny["target"], tmp_path / "h.npz"), capsys)
    assert code == 2 and out == ""
    assert err.startswith("specsearch: error: ") and err.count("\n") == 1, err
    for text in expected:
        assert text in err, err
    assert not (tmp_path / "h.npz").exists()


def test_a_backbone_that_is_not_gguf_is_a_one_line_error(engine, tmp_path, capsys):
    src = write_safetensors(tmp_path / "model.safetensors", skywork_weights(engine.facts.n_embd))
    code, _, err = run_cli(convert_args("skywork", src, src, tmp_path / "h.npz"), capsys)
    assert code == 2 and "not a GGUF file" in err and err.count("\n") == 1


def test_qwen_shapes_are_checked_against_the_backbone(qwen_backbone, tmp_path):
    weights = qwen_weights(64)
    weights["score.2.weight"] = np.zeros((3, 64))  # three labels instead of two
    src = write_safetensors(tmp_path / "model.safetensors", weights)
    with pytest.raises(WeightsError, match=r"score\.2\.weight has shape \[3, 64\], expected \[2, 64\]"):
        convert_head("qwen-math-prm", src, qwen_backbone)

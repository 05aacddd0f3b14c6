"""`specsearch models requantize`: a model rewritten by llama.cpp's quantizer, placed and registered."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from specsearch.cli.main import main
from specsearch.core.engine import Engine, ScoreRequest
from specsearch.core.errors import ModelLoadError
from specsearch.core.gguf_info import read_gguf_info
from specsearch.core.llama_adapter import supports_gpu_offload
from specsearch.core.prm_head import Head, shipped_heads
from specsearch.core.sampling import GREEDY
from specsearch.models import locations
from specsearch.models.registry import InsufficientDiskError, NameTakenError, Registry
from specsearch.models.requantize import derived_name, requantize
from specsearch.models.store import model_files

from conftest import real_models_dir


def _no_partials() -> bool:
    return not [p for p in locations.models_dir().iterdir() if p.name.endswith(".part")]


class TestRequantize:
    def test_writes_a_q4_0_file_the_engine_runs(self, tiny):
        r = requantize(str(tiny["target"]), "q4_0")
        info = read_gguf_info(r.entry.path)
        assert info.quantization == "Q4_0" and r.entry.quantization == "Q4_0"
        assert r.repackable_before == 0.0 and r.repackable_after == 1.0  # f32 in, every layer weight Q4_0 out
        assert Path(r.entry.path).parent == locations.models_dir()
        assert r.entry.source == "requantized:target.gguf" and r.entry.name == "target-q4_0"
        assert info.vocab_fingerprint == read_gguf_info(tiny["target"]).vocab_fingerprint  # it can still draft
        with Engine(r.entry.path) as engine:
            out = engine.generate([engine.tokenize("a cat sat")], 1, max_tokens=8, sampling=GREEDY, seeds=[0])
            assert 1 <= len(out.generations[0].tokens) <= 8
        assert _no_partials()

    def test_more_bits_stay_closer_to_the_original(self, tiny):
        text = "the answer is 12 + 3 = 15, so x"
        rows = {}
        for label, path in (("f32", tiny["target"]), ("q8_0", requantize(str(tiny["target"]), "q8_0").entry.path),
                            ("q4_0", requantize(str(tiny["target"]), "q4_0").entry.path)):
            with Engine(path) as engine:
                tokens = engine.tokenize(text)
                positions = list(range(len(tokens)))
                rows[label] = engine.score([ScoreRequest(tokens, positions, range(engine.n_vocab))], reuse=False)[0]
        err8, err4 = (np.abs(rows[q] - rows["f32"]) for q in ("q8_0", "q4_0"))
        assert err8.mean() < err4.mean() / 5 and err8.max() < err4.max() / 5
        assert (rows["q8_0"].argmax(1) == rows["f32"].argmax(1)).all()

    def test_the_same_input_gives_the_same_bytes_and_is_not_rewritten(self, tiny):
        first = requantize(str(tiny["target"]), "q4_0")
        mtime = Path(first.entry.path).stat().st_mtime_ns
        again = requantize(str(tiny["target"]), "q4_0")
        assert again.reused and again.entry == first.entry
        assert Path(first.entry.path).stat().st_mtime_ns == mtime
        other = requantize(str(tiny["target"]), "q4_0", name="copy")
        assert not other.reused and other.entry.sha256 == first.entry.sha256

    def test_a_registered_source_gives_its_role(self, tiny):
        reg = Registry.load()
        reg.import_file(tiny["draft"], role="small", name="drafter-f32", link=True)
        r = requantize("drafter-f32", "iq4_nl")
        assert r.entry.name == "drafter-iq4_nl" and r.entry.role == "small"
        assert r.source is not None and r.source.name == "drafter-f32"

    def test_llama_cpp_refusing_leaves_nothing_behind(self, tmp_path):
        bad = tmp_path / "odd.gguf"
        w = GGUFWriter(str(bad), "nonesuch")
        w.add_tensor("blk.0.weight", np.ones((32, 32), dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with pytest.raises(ModelLoadError, match="could not requantize"):
            requantize(str(bad), "q4_0")
        assert _no_partials() and not model_files() and not Registry.load().entries()

    def test_a_taken_name_is_refused_before_any_work(self, tiny):
        Registry.load().import_file(tiny["draft"], name="target-q4_0", link=True)
        with pytest.raises(NameTakenError):
            requantize(str(tiny["target"]), "q4_0")
        assert not model_files()

    def test_a_file_already_at_the_path_is_kept(self, tiny, tmp_path):
        (tmp_path / "x").mkdir()
        other = shutil.copy(tiny["draft"], tmp_path / "x" / "target-q4_0.gguf")
        kept = Registry.load().import_file(other, name="keep")  # copied in as models/target-q4_0.gguf
        before = Path(kept.path).read_bytes()
        r = requantize(str(tiny["target"]), "q4_0")
        assert r.entry.name == "target-q4_0" and Path(r.entry.path) != Path(kept.path)
        assert Path(kept.path).read_bytes() == before
        assert {e.name for e in Registry.load().entries()} == {"keep", "target-q4_0"}

    def test_not_enough_disk_stops_before_writing(self, tiny, monkeypatch):
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
        with pytest.raises(InsufficientDiskError):
            requantize(str(tiny["target"]), "q4_0")
        assert not model_files() and _no_partials()

    def test_derived_names(self):
        assert derived_name("qwen2.5-coder-0.5b-instruct-q4_k_m", "q4_0") == "qwen2.5-coder-0.5b-instruct-q4_0"
        assert derived_name("Model-F16", "iq4_nl") == "model-iq4_nl"
        assert derived_name("plain", "q8_0") == "plain-q8_0"


class TestRequantizeCommand:
    def test_set_default_replaces_the_source_in_its_roles(self, tiny, capsys):
        reg = Registry.load()
        reg.import_file(tiny["draft"], role="small", name="d", link=True)
        reg.import_file(tiny["target"], role="large", name="t", link=True)
        reg.set_default("large", "t")
        reg.set_default("small", "d")
        reg.set_default("prm", "d")
        assert main(["models", "requantize", "d", "--set-default"]) == 0
        out = capsys.readouterr().out
        assert "registered: d-q4_0" in out and "0% before, 100% after" in out
        assert "now the default small and prm" in out  # sorted roles, large first when present
        defaults = {role: e.name if e else None for role, e in Registry.load().defaults().items()}
        assert defaults == {"small": "d-q4_0", "large": "t", "prm": "d-q4_0"}

    def test_pack_then_its_tip_on_a_cpu_build(self, tmp_path, monkeypatch, capsys):
        import functools

        from specsearch.cli import models_cmd
        from test_models import TestOfflinePack

        locate, _, _ = TestOfflinePack().make_pack(tmp_path, monkeypatch)
        monkeypatch.setattr(models_cmd, "assemble_offline_pack",
                            functools.partial(models_cmd.assemble_offline_pack, locate=locate))
        assert main(["models", "pack"]) == 0
        out = capsys.readouterr().out
        tip = "`specsearch models requantize pack-small --set-default`"
        assert (tip in out) == (not supports_gpu_offload())
        assert main(["models", "requantize", "pack-small", "--set-default"]) == 0
        defaults = {role: e.name if e else None for role, e in Registry.load().defaults().items()}
        assert defaults == {"small": "pack-small-q4_0", "large": "pack-large", "prm": "pack-small-q4_0"}

    def test_it_times_both_files_unless_told_not_to(self, tiny, capsys):
        assert main(["models", "requantize", str(tiny["target"])]) == 0
        out = capsys.readouterr().out
        line = next(ln for ln in out.splitlines() if ln.startswith("decoding on this machine"))
        before, after = (float(w) for w in line.replace(",", " ").split() if w.replace(".", "").isdigit())
        assert before > 0 and after > 0 and f"({after / before:.2f}x)" in line
        assert main(["models", "requantize", str(tiny["target"]), "--name", "again", "--no-speed-check"]) == 0
        assert "decoding on this machine" not in capsys.readouterr().out

    def test_a_copy_that_cannot_be_faster_is_called_so(self, tiny, capsys):
        first = requantize(str(tiny["target"]), "q4_0")
        assert main(["models", "requantize", first.entry.path, "--name", "same", "--no-speed-check"]) == 0
        assert "same is no faster here than its source; `specsearch models rm same` deletes it" in capsys.readouterr().err

    def test_unknown_source_is_one_line(self, capsys):
        assert main(["models", "requantize", "nope"]) == 2
        assert "no installed model or file called 'nope'" in capsys.readouterr().err


class TestShippedHeadForTheRequantizedDrafter:
    def test_it_is_the_pack_head_with_the_new_backbone(self):
        heads = {p.name: Head.load(p) for p in shipped_heads()}
        base = heads["qwen2.5-coder-0.5b-instruct-q4_k_m.npz"]
        derived = heads["qwen2.5-coder-0.5b-instruct-q4_0.npz"]
        assert "hidden" not in derived.features  # log-prob features: nothing backbone-specific in the weights
        assert derived.features == base.features and derived.backbone_sha256 != base.backbone_sha256
        for (w0, b0), (w1, b1) in zip(base.layers, derived.layers):
            np.testing.assert_array_equal(w0, w1)
            np.testing.assert_array_equal(b0, b1)
        np.testing.assert_array_equal(base.mean, derived.mean)

    @pytest.mark.real
    def test_requantizing_the_pack_drafter_gives_the_file_the_head_ships_for(self):
        folder = real_models_dir()
        source = folder / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" if folder else None
        if source is None or not source.exists():
            pytest.skip("set SPECSEARCH_REAL_MODELS to a folder with the Qwen2.5-Coder pair")
        r = requantize(str(source), "q4_0")
        assert r.head is not None and r.head.name == "qwen2.5-coder-0.5b-instruct-q4_0.npz"
        assert Head.load(r.head).backbone_sha256 == r.entry.sha256

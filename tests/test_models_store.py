"""Model files never overwrite each other: Hub files are stored per repo, imports of
different files with one name get their own files, unsafe names are refused
(against the local Hub stand-in)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from specsearch.models import NameTakenError, Registry, UnsafeNameError, pull
from specsearch.models import locations
from hub_fixtures import hub  # noqa: F401  (fixture)
from tiny_models import write_tiny_model


@pytest.fixture
def two_models(tmp_path) -> tuple[bytes, bytes]:
    """Two different GGUF files (other seeds)."""
    return (write_tiny_model(tmp_path / "a.gguf", 5).read_bytes(),
            write_tiny_model(tmp_path / "b.gguf", 6).read_bytes())


def all_files() -> set[Path]:
    return {p for p in locations.data_dir().parent.rglob("*") if p.is_file()}


class TestHubFilesPerRepo:
    def test_two_repos_with_one_file_name_keep_their_own_file_and_settings(self, hub, two_models):
        first, second = two_models
        hub.add("org-a/model", "model-q4_k_m.gguf", first)
        hub.add("org-b/model", "model-q4_k_m.gguf", second)
        a = pull("org-a/model", "model-q4_k_m.gguf")
        Registry.load().update_settings(a.name, n_ctx=1024, n_threads=2)
        b = pull("org-b/model", "model-q4_k_m.gguf")
        assert a.path != b.path and a.name != b.name
        reg = Registry.load()
        a_now, b_now = reg.get(a.name), reg.get(b.name)
        assert Path(a_now.path).read_bytes() == first and Path(b_now.path).read_bytes() == second
        assert a_now.source == "hub:org-a/model/model-q4_k_m.gguf"
        assert b_now.source == "hub:org-b/model/model-q4_k_m.gguf"
        assert (a_now.n_ctx, a_now.n_threads) == (1024, 2)  # the first model's settings stay its own
        assert (b_now.n_ctx, b_now.n_threads) == (None, None)  # and are not inherited
        assert b.name == "org-b--model--model-q4_k_m"
        assert Path(a.path) == locations.models_dir() / "org-a--model" / "model-q4_k_m.gguf"

    def test_pulling_the_same_file_again_keeps_name_and_settings(self, hub, two_models):
        hub.add("org/tiny", "tiny.gguf", two_models[0])
        first = pull("org/tiny", "tiny.gguf")
        Registry.load().update_settings("tiny", n_ctx=512)
        again = pull("org/tiny", "tiny.gguf")
        assert (again.name, again.path, again.n_ctx) == (first.name, first.path, 512)
        assert [e.name for e in Registry.load().entries()] == ["tiny"]

    def test_a_model_pulled_into_the_old_flat_layout_moves_to_its_repo_folder(self, hub, two_models):
        old = locations.models_dir() / "tiny.gguf"  # where earlier versions stored every Hub file
        old.write_bytes(two_models[0])
        reg = Registry.load()  # adopts it as "tiny"; mark it as the Hub file it was pulled as
        reg.remove("tiny", delete_file=False)
        reg.register_file(old, role="small", name=None, source="hub:org/tiny/tiny.gguf")
        reg.update_settings("tiny", n_ctx=256)
        hub.add("org/tiny", "tiny.gguf", two_models[0])
        entry = pull("org/tiny", "tiny.gguf")
        assert (entry.name, entry.n_ctx) == ("tiny", 256)
        assert Path(entry.path) == locations.models_dir() / "org--tiny" / "tiny.gguf"
        assert not old.exists() and [e.name for e in Registry.load().entries()] == ["tiny"]

    def test_a_file_in_a_repo_sub_folder_is_stored_under_it(self, hub, two_models):
        hub.add("org/tiny", "sub/dir/model.gguf", two_models[0])
        entry = pull("org/tiny", "sub/dir/model.gguf")
        assert Path(entry.path) == locations.models_dir() / "org--tiny" / "sub" / "dir" / "model.gguf"
        assert Path(entry.path).read_bytes() == two_models[0] and entry.name == "model"
        Registry.load().remove("model")
        assert not (locations.models_dir() / "org--tiny").exists()  # emptied folders go too

    @pytest.mark.parametrize("repo, filename", [
        ("org/tiny", "../evil.gguf"),
        ("org/tiny", "sub/../../evil.gguf"),
        ("org/tiny", "/tmp/evil.gguf"),
        ("org/tiny", "sub\\evil.gguf"),
        ("org/tiny", "C:evil.gguf"),
        ("org/tiny", "sub//evil.gguf"),
        ("..", "evil.gguf"),
        ("org/..", "evil.gguf"),
        ("org/tiny/extra", "evil.gguf"),
    ])
    def test_unsafe_names_are_refused_before_any_request(self, hub, two_models, repo, filename):
        hub.add(repo, filename, two_models[0])  # served, so only the refusal can stop it
        before = all_files()
        with pytest.raises(UnsafeNameError) as caught:
            pull(repo, filename)
        message = str(caught.value)
        assert len(message.splitlines()) == 1
        assert f"refusing the file name {filename!r}" in message or f"{repo!r} is not a Hub repo id" in message
        assert hub.requests == [] and all_files() == before

    def test_a_server_etag_never_shapes_a_path(self, hub, two_models):
        hub.add("org/tiny", "tiny.gguf", two_models[0], etag="../../../../../../evil")
        entry = pull("org/tiny", "tiny.gguf")  # no SHA-256 to check against: the download is kept
        assert Path(entry.path).read_bytes() == two_models[0]
        assert not [p for p in all_files() if "evil" in p.name]


class TestImportNeverOverwrites:
    def test_two_different_files_with_one_name_both_stay(self, tmp_path, two_models):
        (tmp_path / "one").mkdir()
        (tmp_path / "two").mkdir()
        one, two = tmp_path / "one" / "model.gguf", tmp_path / "two" / "model.gguf"
        one.write_bytes(two_models[0])
        two.write_bytes(two_models[1])
        reg = Registry.load()
        first = reg.import_file(one)
        reg.update_settings(first.name, n_ctx=2048)
        second = reg.import_file(two)
        assert first.path != second.path and first.name != second.name
        assert Path(first.path).read_bytes() == two_models[0] and Path(second.path).read_bytes() == two_models[1]
        again = Registry.load()
        assert again.get(first.name).n_ctx == 2048 and again.get(second.name).n_ctx is None
        digest = hashlib.sha256(two_models[1]).hexdigest()
        assert Path(second.path).name == f"model-{digest[:12]}.gguf" and second.name == f"model-{digest[:12]}"

    def test_the_same_file_imported_twice_is_one_file(self, tmp_path, two_models):
        src = tmp_path / "model.gguf"
        src.write_bytes(two_models[0])
        reg = Registry.load()
        first, second = reg.import_file(src), reg.import_file(src)
        assert first.path == second.path and [e.name for e in Registry.load().entries()] == ["model"]
        assert [p.name for p in locations.models_dir().iterdir() if p.is_file()] == ["model.gguf"]

    def test_an_explicit_name_of_another_model_is_refused(self, tmp_path, two_models):
        one, two = tmp_path / "one.gguf", tmp_path / "two.gguf"
        one.write_bytes(two_models[0])
        two.write_bytes(two_models[1])
        reg = Registry.load()
        reg.import_file(one, name="mine")
        reg.update_settings("mine", n_threads=3)
        with pytest.raises(NameTakenError, match="'mine' already stands for another model"):
            reg.import_file(two, name="mine")
        kept = Registry.load().get("mine")
        assert Path(kept.path).read_bytes() == two_models[0] and kept.n_threads == 3
        assert sorted(p.name for p in locations.models_dir().iterdir()) == ["one.gguf"]


class TestRebuildFindsPerRepoFiles:
    def test_a_lost_registry_adopts_files_in_repo_folders(self, hub, two_models):
        hub.add("org-a/m", "model.gguf", two_models[0])
        hub.add("org-b/m", "model.gguf", two_models[1])
        pull("org-a/m", "model.gguf")
        pull("org-b/m", "model.gguf")
        Registry.load().path.unlink()
        names = sorted(e.name for e in Registry.load().entries())
        assert names == ["model", "org-b--m--model"]

    def test_a_rebuild_keeps_the_name_of_a_file_pulled_from_a_repo_sub_folder(self, hub, two_models):
        hub.add("org-a/m", "model.gguf", two_models[0])
        hub.add("org-b/m", "sub/model.gguf", two_models[1])  # its stem is taken: named after its repo
        pull("org-a/m", "model.gguf")
        pulled = pull("org-b/m", "sub/model.gguf")
        assert pulled.name == "org-b--m--model"
        Registry.load().path.write_text("{bad", encoding="utf-8")  # a bad file: the registry is rebuilt
        rebuilt = {e.name: Path(e.path) for e in Registry.load().entries()}
        assert rebuilt == {"model": locations.models_dir() / "org-a--m" / "model.gguf",
                           "org-b--m--model": Path(pulled.path)}

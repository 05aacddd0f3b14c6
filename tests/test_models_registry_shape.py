"""A registry.json of the wrong shape is set aside and loaded without its bad parts (never a
crash); load settings are range-checked where they are defined, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specsearch.core.errors import SpecSearchError
from specsearch.models import Registry
from specsearch.models import locations
from specsearch.models.entry import INT32_MAX


@pytest.fixture
def two(tiny) -> Registry:
    reg = Registry.load()
    reg.import_file(tiny["target"], name="big", role="large")
    reg.import_file(tiny["draft"], name="little", role="small", link=True)
    reg.set_default("large", "big")
    reg.update_settings("big", n_ctx=1024)
    return reg


def rewrite(reg: Registry, change) -> dict:
    data = json.loads(reg.path.read_text())
    change(data)
    reg.path.write_text(json.dumps(data))
    return data


def data_dir_state() -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in locations.data_dir().rglob("*") if p.is_file()}


def aside_files(reg: Registry) -> list[Path]:
    return sorted(reg.path.parent.glob("registry.json.bad-*"))


class TestWrongShape:
    @pytest.mark.parametrize("change, kept", [
        (lambda d: d["models"].__setitem__("little", None), ["big"]),
        (lambda d: d["models"].__setitem__("little", [1, 2]), ["big"]),
        (lambda d: d["models"]["little"].__setitem__("path", 7), ["big"]),
        (lambda d: d["models"]["little"].__setitem__("size_bytes", "huge"), ["big"]),
        (lambda d: d["models"]["little"].pop("vocab_fingerprint"), ["big"]),
        (lambda d: d.__setitem__("defaults", ["big"]), ["big", "little"]),
        (lambda d: d["defaults"].__setitem__("small", {"name": "little"}), ["big", "little"]),
        (lambda d: d["models"]["little"].__setitem__("role", "captain"), ["big", "little"]),
    ])
    def test_is_set_aside_and_the_good_parts_load(self, two, change, kept):
        original = rewrite(two, change)
        reg = Registry.load()
        assert sorted(e.name for e in reg.entries()) == kept
        assert reg.get("big").n_ctx == 1024  # the good entry keeps its settings
        [aside] = aside_files(reg)
        assert reg.recovered_from == aside and json.loads(aside.read_text()) == original
        assert reg.recovery_note and "wrong shape" in reg.recovery_note and len(reg.recovery_note.splitlines()) == 1
        assert not aside_files(Registry.load())[1:]  # the repaired file loads cleanly: nothing set aside again

    def test_a_dropped_entrys_file_in_the_models_folder_is_adopted_again(self, two):
        rewrite(two, lambda d: d["models"].__setitem__("big", "oops"))
        reg = Registry.load()
        adopted = [e for e in reg.entries() if e.path == str(locations.models_dir() / "target.gguf")]
        assert [e.source for e in adopted] == ["rebuilt"]

    def test_settings_out_of_range_on_disk_are_reset(self, two):
        rewrite(two, lambda d: d["models"]["big"].update(n_ctx=-5, n_threads="many", n_gpu_layers=-1))
        reg = Registry.load()
        big = reg.get("big")
        assert (big.n_ctx, big.n_threads, big.n_gpu_layers) == (None, None, "auto")
        assert "n_ctx" in reg.recovery_note and aside_files(reg)

    @pytest.mark.parametrize("text", ["[]", '"x"', "null", '{"models": 3}', "[" * 100_000],
                             ids=["list", "string", "null", "models-number", "deep-nesting"])
    def test_not_a_registry_object_is_rebuilt_from_disk(self, two, text):
        two.path.write_text(text)
        reg = Registry.load()
        assert reg.recovered_from is not None and reg.recovered_from.read_text() == text
        assert "unreadable" in reg.recovery_note
        assert [e.path for e in reg.entries()] == [str(locations.models_dir() / "target.gguf")]

    def test_cli_warns_in_one_line_and_works(self, two, capsys):
        from specsearch.cli.main import main

        rewrite(two, lambda d: d["models"].__setitem__("little", 5))
        assert main(["models", "list"]) == 0
        err = capsys.readouterr().err.strip()
        assert err.startswith("specsearch: warning: the model registry had parts of the wrong shape")
        assert len(err.splitlines()) == 1

    def test_a_change_through_an_old_registry_object_repairs_first(self, two):
        rewrite(two, lambda d: d["models"].__setitem__("little", None))
        two.set_default("small", None)  # `two` was loaded before the file went bad
        assert aside_files(two) and [e.name for e in Registry.load().entries()] == ["big"]


class TestSettingsRanges:
    @pytest.mark.parametrize("settings", [
        {"n_ctx": -1}, {"n_ctx": INT32_MAX + 1}, {"n_ctx": 2.5}, {"n_ctx": True},
        {"n_threads": -2}, {"n_threads": 10_000}, {"n_threads": "4"},
        {"n_gpu_layers": -1}, {"n_gpu_layers": "abc"}, {"n_gpu_layers": 1.5}, {"n_gpu_layers": INT32_MAX + 1},
    ])
    def test_bad_values_are_refused_and_nothing_changes(self, two, settings):
        before = data_dir_state()
        with pytest.raises(SpecSearchError) as caught:
            two.update_settings("big", **settings)
        message = str(caught.value)
        assert len(message.splitlines()) == 1 and next(iter(settings)) in message
        assert data_dir_state() == before  # not even the lock file is touched

    def test_good_values_and_automatic(self, two):
        assert two.update_settings("big", n_gpu_layers="12", n_ctx=0, n_threads=0).settings == \
            {"n_gpu_layers": 12, "n_ctx": None, "n_threads": None}
        assert two.update_settings("big", n_gpu_layers="auto", n_ctx=INT32_MAX, n_threads=512).settings == \
            {"n_gpu_layers": "auto", "n_ctx": INT32_MAX, "n_threads": 512}

    @pytest.mark.parametrize("argv, word", [
        (["--n-gpu-layers", "abc"], "n_gpu_layers"),
        (["--n-gpu-layers", "-3"], "n_gpu_layers"),
        (["--n-ctx", "-5"], "n_ctx"),
        (["--threads", "-1"], "n_threads"),
    ])
    def test_cli_says_one_line_and_exits_2(self, two, capsys, argv, word):
        from specsearch.cli.main import main

        before = data_dir_state()
        assert main(["models", "settings", "big", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("specsearch: error: ") and word in err and len(err.splitlines()) == 1
        assert data_dir_state() == before

    @pytest.mark.parametrize("argv", [["rm", "nope"], ["set-default", "--small", "nope"],
                                      ["settings", "nope", "--n-ctx", "5"]])
    def test_a_mistyped_name_changes_nothing(self, two, capsys, argv):
        from specsearch.cli.main import main

        before = data_dir_state()
        assert main(["models", *argv]) == 2
        assert "no installed model named 'nope'" in capsys.readouterr().err
        assert data_dir_state() == before

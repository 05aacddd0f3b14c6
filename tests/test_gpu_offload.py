"""GPU offload you can see: `specsearch info --system`, each engine's Offload, and the
warning for GPU layers asked of a build without GPU offload (this machine's build is
CPU-only: the CPU path is what these tests pin down; they skip on a GPU build)."""

from __future__ import annotations

import json

import pytest

from specsearch.cli.main import main
from specsearch.core import llama_adapter as lla
from specsearch.core.api import Solver
from specsearch.core.config import SearchConfig
from specsearch.core.engine import Engine, LoadOptions
from specsearch.core.gguf_info import read_gguf_info
from specsearch.core.offload import Offload, offload_warning, offloaded_layers, planned_offload

cpu_only = pytest.mark.skipif(lla.supports_gpu_offload(), reason="this llama.cpp build has GPU offload")
WARNING = ("specsearch: warning: GPU layers asked for ({}) but this llama.cpp build has no GPU offload: the models "
           "run on the CPU (`specsearch info --system` shows the build; the README's GPU section says how to "
           "rebuild)\n")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def total_layers(path) -> int:
    return read_gguf_info(path).n_layers + 1  # llama.cpp counts the output layer too


class TestOffloadedLayers:
    @pytest.mark.parametrize("asked, reported, expected", [
        (-1, None, 25), (0, None, 0), (5, None, 5), (24, None, 24), (25, None, 25), (999, None, 25),
        (999, (20, 25), 20),  # what llama.cpp logged wins
    ])
    def test_with_gpu_offload(self, asked, reported, expected):
        assert offloaded_layers(asked, 24, True, reported) == expected

    @pytest.mark.parametrize("asked", [-1, 0, 5, 999])
    def test_without_gpu_offload_none(self, asked):
        assert offloaded_layers(asked, 24, False, (25, 25)) == 0

    def test_label(self):
        assert Offload("CPU", 0, 25).label() == "CPU · 0/25 layers on GPU"
        assert Offload("CUDA0", 25, 25, -1).to_dict() == {"backend": "CUDA0", "layers": 25, "total": 25,
                                                          "requested": -1, "label": "CUDA0 · 25/25 layers on GPU"}


@cpu_only
class TestCPUOnlyBuild:
    @pytest.mark.parametrize("requested", [None, 0, 2, 999, -1])
    def test_an_engine_reports_every_layer_on_the_cpu(self, tiny, requested):
        with Engine(tiny["target"], LoadOptions(n_gpu_layers=requested, n_threads=1)) as engine:
            assert engine.offload == Offload("CPU", 0, total_layers(tiny["target"]), requested)
            assert engine.offload.total == engine.facts.n_layer + 1

    def test_speculation_costs_verification_as_on_the_cpu_whatever_was_asked(self, tiny):
        from specsearch.core.speculative import SpeculativeDecoder

        with Engine(tiny["target"], LoadOptions(n_gpu_layers=8, n_threads=1)) as target, \
                Engine(tiny["draft"], LoadOptions(n_threads=1)) as draft:
            assert SpeculativeDecoder(target, draft).policy.verify_growth == 1.0  # the CPU's, not a GPU's 0.1

    def test_planned_offload_is_the_loaded_one(self, tiny):
        with Engine(tiny["target"], LoadOptions(n_gpu_layers=7, n_threads=1)) as engine:
            assert planned_offload(7, read_gguf_info(tiny["target"]).n_layers) == engine.offload

    def test_the_solver_reports_its_loaded_models(self, tiny):
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["target"]) as solver:
            assert solver.offload() == {}
            solver.solve("What is 2+3?", SearchConfig(method="ar", max_depth=1, max_step_tokens=4, beam_width=1,
                                                      children=1))
            total = total_layers(tiny["target"])
            assert solver.offload() == {"large": Offload("CPU", 0, total), "prm": Offload("CPU", 0, total)}

    @pytest.mark.parametrize("requested, expected", [
        ({"small": None, "large": 0}, None),
        ({"large": 20}, "large 20"),
        ({"small": 3, "large": None, "prm": -1}, "small 3, prm all"),
    ])
    def test_the_warning_names_what_asked_for_gpu_layers(self, requested, expected):
        warning = offload_warning(requested)
        assert warning == (None if expected is None else WARNING.format(expected)[len("specsearch: warning: "):-1])


@cpu_only
class TestInfoSystem:
    def test_text(self, capsys, tiny):
        code, out, err = run_cli(capsys, "info", "--system", "--small", str(tiny["draft"]), "--threads", "1")
        width = len("llama-cpp-python")  # the longest label: the values start two columns after it
        rows = {line[:width].strip(): line[width + 2:] for line in out.splitlines()}
        assert code == 0 and err == ""
        assert rows == {
            "llama-cpp-python": "0.3.36",
            "GPU offload": "no (a CPU-only build: GPU layers are ignored)",
            "devices": rows["devices"],
            "GPU devices": "0",
            "system info": lla.system_info(),
            "small": f"CPU · 0/{total_layers(tiny['draft'])} layers on GPU  ({tiny['draft']})",
        }
        assert rows["devices"].startswith("CPU: ") and "(CPU, " in rows["devices"]  # with its memory

    def test_json(self, capsys, tiny):
        code, out, err = run_cli(capsys, "info", "--system", "--json", "--large", str(tiny["target"]),
                                 "--prm", str(tiny["target"]), "--threads", "1")
        data = json.loads(out)
        assert code == 0 and err == ""
        assert data["system"]["gpu_offload"] is False
        assert data["system"]["system_info"] == lla.system_info()
        assert [d["kind"] for d in data["system"]["devices"]] == ["CPU"]
        expected = {"path": str(tiny["target"]), "backend": "CPU", "layers": 0, "total": total_layers(tiny["target"]),
                    "requested": None, "label": f"CPU · 0/{total_layers(tiny['target'])} layers on GPU"}
        assert data["models"] == {"large": expected, "prm": expected}

    def test_without_models_nothing_loads(self, capsys):
        before = lla.live_handles()
        code, out, err = run_cli(capsys, "info", "--system", "--json")
        assert code == 0 and json.loads(out)["models"] == {} and lla.live_handles() == before

    def test_model_manager_names_and_their_gpu_setting(self, capsys, tiny):
        from specsearch.models import Registry

        reg = Registry.load()
        reg.import_file(tiny["target"], name="big", role="large", link=True)
        reg.update_settings("big", n_gpu_layers=4)
        code, out, err = run_cli(capsys, "info", "--system", "--large", "big", "--json", "--threads", "1")
        assert code == 0 and err == WARNING.format("large 4")
        assert json.loads(out)["models"]["large"]["requested"] == 4
        assert json.loads(out)["models"]["large"]["layers"] == 0

    @pytest.mark.parametrize("argv, message", [
        (["info"], "give a .gguf file (specsearch info MODEL.gguf), or --system"),
        (["info", "x.gguf", "--small", "s.gguf"], "--small: only with --system"),
        (["info", "--system", "x.gguf"], "--system takes models as --small/--large/--prm, not as MODEL"),
        (["info", "--system", "--small", "nope"], "small model 'nope' is neither a file nor a model-manager name."),
        (["info", "--system", "--threads", "1000"], "n_threads must be in [1, 512], not 1000"),
    ])
    def test_errors_are_one_line(self, capsys, argv, message):
        code, out, err = run_cli(capsys, *argv)
        assert (code, out, err) == (2, "", f"specsearch: error: {message}\n")


@cpu_only
class TestWarningOnTheCommandLine:
    def test_generate_warns_once_and_still_runs(self, capsys, tiny):
        args = ["generate", "--model", str(tiny["target"]), "--prompt", "the cat", "--max-tokens", "3", "--json"]
        code, out, err = run_cli(capsys, *args, "--n-gpu-layers", "8")
        assert code == 0 and err == WARNING.format("--n-gpu-layers 8") and json.loads(out)["texts"]
        for quiet in ([], ["--n-gpu-layers", "0"]):  # automatic and none are silent
            code, _, err = run_cli(capsys, *args, *quiet)
            assert code == 0 and err == ""

    def test_solve_warns_for_the_model_managers_setting(self, capsys, tiny):
        from specsearch.models import Registry

        reg = Registry.load()
        reg.import_file(tiny["target"], name="big", role="large", link=True)
        reg.update_settings("big", n_gpu_layers=12)
        args = ["solve", "What is 3 + 4?", "--large", "big", "--method", "ar", "--depth", "1", "--step-tokens", "4",
                "--children", "1", "--json"]
        code, _, err = run_cli(capsys, *args)
        # the large model asked for 12; the judge is the large model too, loaded with its settings
        assert code == 0 and err == WARNING.format("large 12, prm 12")
        code, _, err = run_cli(capsys, *args, "--n-gpu-layers", "0")  # the flag overrides the setting
        assert code == 0 and err == ""

    def test_models_settings_warns_for_a_number_not_for_auto(self, capsys, tiny):
        from specsearch.models import Registry

        Registry.load().import_file(tiny["target"], name="big", link=True)
        code, out, err = run_cli(capsys, "models", "settings", "big", "--n-gpu-layers", "30")
        assert code == 0 and out.startswith("big: n_gpu_layers=30") and err == WARNING.format("big 30")
        code, _, err = run_cli(capsys, "models", "settings", "big", "--n-gpu-layers", "auto")
        assert code == 0 and err == ""

"""The app shows where each model runs (backend, layers on the GPU) in the statistics panel
and the model manager, and warns once when GPU layers are asked of a build without GPU
offload (this machine's build is CPU-only; the tests skip on a GPU build)."""

from __future__ import annotations

import pytest
from app_fixtures import app_models, ask, async_test, finished, make_app, notices, wait_until  # noqa: F401

from specsearch.app.screens.models import ModelsScreen
from specsearch.app.screens.settings import SettingsScreen
from specsearch.app.widgets.search_panel import SearchPanel
from specsearch.core import llama_adapter as lla
from specsearch.core.gguf_info import read_gguf_info
from specsearch.models import Registry
from test_remote_faults import completion, ok, stand_in  # noqa: F401  (the stand-in completions server)

pytestmark = pytest.mark.skipif(lla.supports_gpu_offload(), reason="this llama.cpp build has GPU offload")
QUESTION = "What is 2+3?"


def on_cpu(path) -> str:
    return f"CPU · 0/{read_gguf_info(path).n_layers + 1} layers on GPU"


def gpu_warnings(app) -> list[str]:
    return [n for n in notices(app) if n.startswith("GPU: ")]


async def searched(pilot):
    """The chat screen once a search of QUESTION has finished."""
    screen = await ask(pilot, QUESTION)
    await wait_until(pilot, finished(screen))
    return screen


def shown_text(widget) -> str:
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


class TestStatisticsPanel:
    @async_test
    async def test_each_model_shows_its_backend_and_layers(self, app_models):
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await searched(pilot)
            panel = screen.query_one(SearchPanel)
            rows = {k: v for k, v in panel.stats.rows.items() if k.endswith(" model") and k != "reward model"}
            assert rows == {"small model": on_cpu(app_models["small"]), "large model": on_cpu(app_models["large"]),
                            "PRM model": on_cpu(app_models["small"])}
            shown = shown_text(panel.stats.query_one("#stats-table"))
            assert "large model" in shown and on_cpu(app_models["large"]) in shown
            assert gpu_warnings(app) == []  # automatic GPU layers: nothing to warn about


class TestWarning:
    @async_test
    async def test_gpu_layers_in_the_settings_are_a_warning_once_per_loaded_models(self, app_models):
        app = make_app(app_models, n_gpu_layers_large=6)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await searched(pilot)
            await wait_until(pilot, lambda: gpu_warnings(app))
            assert gpu_warnings(app) == [
                "GPU: GPU layers asked for (large 6) but this llama.cpp build has no GPU offload: the models run on "
                "the CPU (`specsearch info --system` shows the build; the README's GPU section says how to rebuild)"]
            # the search ran, on the CPU
            assert screen.query_one(SearchPanel).stats.rows["large model"] == on_cpu(app_models["large"])
            await pilot.press("ctrl+n")
            await searched(pilot)  # the same models, still loaded: no second warning
            assert len(gpu_warnings(app)) == 1

    @async_test
    async def test_saving_gpu_layers_in_the_settings_screen_warns(self, app_models):
        app = make_app(app_models)
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.press("f7")
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
            app.screen.set_value("n_gpu_layers_small", 3)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
            assert [n.split(" but ")[0] for n in gpu_warnings(app)] == ["GPU: GPU layers asked for (small 3)"]
            await pilot.press("f7")
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
            app.screen.set_value("n_gpu_layers_small", "")  # automatic: saved silently
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
            assert len(gpu_warnings(app)) == 1


class TestModelManager:
    @async_test
    async def test_the_local_table_shows_planned_then_loaded_layers(self, app_models):
        reg = Registry.load()
        reg.import_file(app_models["large"], name="big", role="large", link=True)
        reg.import_file(app_models["small"], name="little", role="small", link=True)
        reg.set_default("large", "big")
        reg.set_default("small", "little")
        reg.update_settings("big", n_gpu_layers=5)
        app = make_app(None)  # the model manager's defaults
        async with app.run_test(size=(160, 45)) as pilot:
            await pilot.press("f6")
            screen = await wait_until(pilot, lambda: isinstance(app.screen, ModelsScreen) and app.screen.local
                                      and app.screen)
            table = screen.query_one("#local-table")
            column = [str(c.label) for c in table.columns.values()].index("backend")

            def backend(name: str) -> str:
                return str(table.get_row(name)[column])

            assert backend("big") == f"{on_cpu(app_models['large'])} (when loaded)"
            assert backend("little") == f"{on_cpu(app_models['small'])} (when loaded)"
            assert on_cpu(app_models["large"]) in shown_text(table)  # on screen

            await pilot.press("f2")
            await searched(pilot)
            await pilot.press("f6")
            await wait_until(pilot, lambda: backend("big") == on_cpu(app_models["large"]))  # loaded now
            assert backend("little") == on_cpu(app_models["small"])


class TestServedLargeModel:
    @async_test
    async def test_a_served_large_model_asks_no_gpu_layers_and_the_search_runs(self, app_models, stand_in):
        # A served model has no GPU-layer setting (its server places it): the warning check
        # must leave it out, not fail the search (it did: ServedModel has no n_gpu_layers).
        srv = stand_in(lambda body: ok(completion("The answer is 5.", "stop", choice={"stop_reason": None})))
        app = make_app(app_models, large=srv.url, prm_kind="arith", method="ar", n_gpu_layers_small=4)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await searched(pilot)
            result = screen.live.result
            assert srv.requests, "the served large model wrote the thoughts"
            assert result is not None and result.error is None and result.answer == "5"
            assert [w for w in gpu_warnings(app) if "small 4" in w], "the local model's GPU layers still warn"
            assert not [n for n in notices(app) if "Error" in n]
            rows = screen.query_one(SearchPanel).stats.rows
            assert rows["large model"] == f"served at {srv.url}"

    @async_test
    async def test_a_served_model_failing_mid_search_is_said_on_the_turn_not_taken_for_esc(self, app_models, stand_in):
        calls = []

        def answer(body):
            calls.append(body)
            if len(calls) <= 1:  # the load-time probe
                return ok(completion("The sum is 5.", "stop", choice={"stop_reason": None}))
            return 400, b'{"error": {"message": "model unloaded"}}', 0.0

        srv = stand_in(answer)
        app = make_app(app_models, large=srv.url, prm_kind="arith", method="ar", max_depth=4)
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await searched(pilot)
            result = screen.live.result
            assert result.error and result.cancelled
            status = str(app.screen.query(".status").last().render())
            assert "stopped: " in status and "Esc" not in status

"""Settings: one dataclass, persisted atomically, env and command-line overrides, the form."""

from __future__ import annotations

import json

import pytest
from app_fixtures import async_test, wait_until

from specsearch.app.app import SpecSearchApp
from specsearch.app.main import build_parser, overrides_from_args
from specsearch.app.screens.settings import SettingsScreen
from specsearch.app.settings import FIELD_NAMES, Settings, SettingsStore, env_overrides, field_docs, resolve_models, settings_path
from specsearch.core.config import SearchConfig


class TestSettingsStore:
    def test_every_field_has_a_docstring(self):
        docs = field_docs()
        assert set(docs) == set(FIELD_NAMES)
        assert all(docs[name].strip() for name in FIELD_NAMES)

    def test_defaults_match_the_core(self):
        assert Settings().search_config() == SearchConfig()

    def test_save_load_roundtrip(self):
        store = SettingsStore.load(environ={})
        edited = Settings(method="ar", beam_width=3, theta=0.8, threshold_stat="max", n_ctx_large=4096,
                          threshold_mode="fixed", fixed_beta=0.4)
        store.save(edited)
        data = json.loads(settings_path().read_text(encoding="utf-8"))
        assert data["method"] == "ar" and data["n_ctx_large"] == 4096
        again = SettingsStore.load(environ={}).effective
        assert again == edited
        assert again.search_config().threshold_mode == "fixed"

    def test_env_overrides_apply_for_this_run_only(self):
        environ = {"SPECSEARCH_METHOD": "sps", "SPECSEARCH_BEAM": "5", "SPECSEARCH_SMALL": "/x/s.gguf",
                   "SPECSEARCH_N_CTX_PRM": ""}
        assert env_overrides(environ) == {"method": "sps", "beam_width": 5, "small": "/x/s.gguf", "n_ctx_prm": None}
        store = SettingsStore.load(environ=environ)
        assert store.effective.method == "sps" and store.effective.beam_width == 5
        # saving with the overridden values untouched does not persist them
        edited = store.effective
        edited.children = 7
        store.save(edited)
        saved = json.loads(settings_path().read_text(encoding="utf-8"))
        assert saved["method"] == "auto" and saved["beam_width"] == 2 and saved["small"] is None
        assert saved["children"] == 7

    def test_command_line_beats_env(self):
        args = build_parser().parse_args(["--small", "S.gguf", "--method", "ar", "--beam", "4", "--theta", "0.5"])
        cli = overrides_from_args(args)
        assert cli == {"small": "S.gguf", "method": "ar", "beam_width": 4, "theta": 0.5}
        store = SettingsStore.load(cli, environ={"SPECSEARCH_METHOD": "sps"})
        assert store.effective.method == "ar"

    def test_bad_values_are_refused(self):
        with pytest.raises(ValueError, match="SPECSEARCH_BEAM"):
            env_overrides({"SPECSEARCH_BEAM": "many"})
        with pytest.raises(ValueError):
            Settings(beam_width=0).validate()
        with pytest.raises(ValueError):
            Settings(method="magic").validate()

    @pytest.mark.parametrize("field, value, message", [
        ("n_threads", 1000, "n_threads must be in [1, 512], not 1000"),
        ("n_ctx_large", 2**31, "n_ctx_large must be in [1, 2147483647], not 2147483648"),
        ("n_gpu_layers_prm", 2**31, "n_gpu_layers_prm must be in [-1, 2147483647], not 2147483648"),
        ("n_gpu_layers_small", -2, "n_gpu_layers_small must be in [-1, 2147483647], not -2"),
        ("n_ctx_small", 0, "n_ctx_small must be in [1, 2147483647], not 0"),
    ])
    def test_load_settings_take_the_engines_ranges(self, field, value, message):
        # LoadOptions would refuse these only when a model loads; the settings refuse them up front.
        with pytest.raises(ValueError) as caught:
            Settings(**{field: value}).validate()
        assert str(caught.value) == message

    def test_load_settings_at_the_engines_limits_are_taken(self):
        Settings(n_threads=512, n_ctx_large=2**31 - 1, n_gpu_layers_small=-1, n_gpu_layers_prm=0).validate()

    def test_corrupt_file_is_reported_not_fatal(self):
        settings_path().write_text("{oops", encoding="utf-8")
        store = SettingsStore.load(environ={})
        assert store.effective == Settings() and "set aside" in store.warning
        [aside] = settings_path().parent.glob("settings.json.corrupt-*")  # kept, not deleted
        assert aside.read_text(encoding="utf-8") == "{oops"

    def test_models_resolve_to_specs_and_prm_defaults_to_small(self, tiny):
        s = Settings(small=str(tiny["draft"]), large=str(tiny["target"]), n_ctx_small=1024, n_threads=1)
        resolved = resolve_models(s, [], {})
        assert resolved.specs["small"].n_ctx == 1024 and resolved.specs["prm"] == resolved.specs["small"]
        assert resolved.missing_for("specsearch") == []
        assert resolve_models(Settings(small="/no/such.gguf"), [], {}).problems


class TestSettingsScreen:
    @async_test
    async def test_form_round_trip(self):
        app = SpecSearchApp(SettingsStore.load(environ={}), check_models=False)
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.press("f7")
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
            screen = app.screen
            screen.set_value("method", "sps")
            screen.set_value("beam_width", 3)
            screen.set_value("children", 2)
            screen.set_value("theta", 0.75)
            screen.set_value("threshold_stat", "quantile")
            screen.set_value("seed", 11)
            screen.set_value("n_gpu_layers_large", 0)
            screen.set_value("n_ctx_small", 2048)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
            expected = dict(method="sps", beam_width=3, children=2, theta=0.75, threshold_stat="quantile", seed=11,
                            n_gpu_layers_large=0, n_ctx_small=2048)
            saved = json.loads(settings_path().read_text(encoding="utf-8"))
            assert {k: saved[k] for k in expected} == expected
            assert {k: getattr(app.settings, k) for k in expected} == expected

            # reopened, the form shows the saved values
            await pilot.press("f7")
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
            assert app.screen.read_form() == app.settings

            # a bad value is refused with a message; nothing is written
            app.screen.set_value("beam_width", 0)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: "beam_width" in str(app.screen.query_one("#settings-error").render()))
            assert isinstance(app.screen, SettingsScreen)
            assert json.loads(settings_path().read_text(encoding="utf-8"))["beam_width"] == 3

            # ... and so is a load setting beyond the engine's limit (not only when a model loads)
            app.screen.set_value("beam_width", 3)
            app.screen.set_value("n_threads", 1000)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: "n_threads must be in [1, 512]"
                             in str(app.screen.query_one("#settings-error").render()))
            assert json.loads(settings_path().read_text(encoding="utf-8"))["n_threads"] is None
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))


class TestPRMKindChoicesInTheApp:
    def test_command_line_and_validation_follow_the_registry(self):
        from specsearch.core.prm import prm_kind_names

        parser = build_parser()
        action = next(a for a in parser._actions if a.dest == "prm_kind")
        assert tuple(action.choices) == prm_kind_names()
        for kind in prm_kind_names():
            Settings(prm_kind=kind).validate()
        with pytest.raises(ValueError, match="prm_kind: choose from judge"):
            Settings(prm_kind="magic").validate()

    @async_test
    async def test_settings_form_offers_every_kind(self):
        from textual.widgets import Select

        from specsearch.core.prm import prm_kind_names

        app = SpecSearchApp(SettingsStore.load(environ={}), check_models=False)
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.press("f7")
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
            select = app.screen.query_one("#set-prm_kind", Select)
            assert tuple(value for _, value in select._options if value is not Select.BLANK) == prm_kind_names()


class TestHeadAndArithSettings:
    def test_defaults_env_and_command_line(self):
        assert (Settings().prm_head, Settings().arith_check) == (None, True)
        assert env_overrides({"SPECSEARCH_ARITH_CHECK": "off", "SPECSEARCH_HEAD": "/h/x.npz"}) == \
            {"arith_check": False, "prm_head": "/h/x.npz"}
        assert env_overrides({"SPECSEARCH_PRM_HEAD": "", "SPECSEARCH_ARITH_CHECK": "1"}) == \
            {"prm_head": None, "arith_check": True}
        with pytest.raises(ValueError, match="SPECSEARCH_ARITH_CHECK: arith_check: expected on or off"):
            env_overrides({"SPECSEARCH_ARITH_CHECK": "maybe"})
        cli = overrides_from_args(build_parser().parse_args(["--no-arith-check", "--head", "h.npz",
                                                             "--prm-kind", "head"]))
        assert cli == {"arith_check": False, "prm_head": "h.npz", "prm_kind": "head"}
        assert overrides_from_args(build_parser().parse_args(["--arith-check"])) == {"arith_check": True}
        assert overrides_from_args(build_parser().parse_args([])) == {}

    def test_saved_and_loaded(self):
        store = SettingsStore.load(environ={})
        store.save(Settings(prm_kind="head", prm_head="/h/x.npz", arith_check=False))
        data = json.loads(settings_path().read_text(encoding="utf-8"))
        assert (data["prm_head"], data["arith_check"]) == ("/h/x.npz", False)
        assert SettingsStore.load(environ={}).effective.arith_check is False

    @async_test
    async def test_form_round_trip(self):
        app = SpecSearchApp(SettingsStore.load(environ={}), check_models=False)
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.press("f7")
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
            assert app.screen.query_one("#set-arith_check").value == "on"
            app.screen.set_value("prm_kind", "head")
            app.screen.set_value("prm_head", "/heads/h.npz")
            app.screen.set_value("arith_check", False)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
            assert (app.settings.prm_kind, app.settings.prm_head, app.settings.arith_check) == \
                ("head", "/heads/h.npz", False)
            await pilot.press("f7")
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
            assert app.screen.query_one("#set-arith_check").value == "off"
            assert app.screen.read_form() == app.settings

    def test_solver_pool_reloads_when_they_change(self, tiny):
        from specsearch.app.search_worker import SolverPool

        pool = SolverPool()  # Solvers load models lazily: nothing is loaded here
        s = Settings(small=str(tiny["draft"]), large=str(tiny["target"]))
        models = resolve_models(s, [], {})
        first = pool.for_settings(models, s)
        assert (first.prm_kind, first.prm_head, first.arith_check) == ("auto", None, True)
        assert pool.for_settings(models, s) is first and pool.get(models, s.prm_kind) is first
        off = pool.for_settings(models, Settings(**{**s.to_dict(), "arith_check": False}))
        assert off is not first and off.arith_check is False
        assert pool.loaded(models, s.prm_kind, arith_check=False) and not pool.loaded(models, s.prm_kind)
        headed = pool.for_settings(models, Settings(**{**s.to_dict(), "prm_kind": "head", "prm_head": "~/h.npz"}))
        assert headed is not off and headed.prm_head.endswith("/h.npz") and not headed.prm_head.startswith("~")
        pool.close()

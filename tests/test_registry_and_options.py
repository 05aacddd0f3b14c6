"""One method registry and SearchConfig as the one source of the search options:
a registered method appears in every menu, every field is settable everywhere."""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from typing import Any

import pytest
from app_fixtures import async_test, wait_until

from specsearch.app.app import SpecSearchApp
from specsearch.app.main import build_parser as build_tui_parser
from specsearch.app.main import overrides_from_args
from specsearch.app.screens.settings import FORM_FIELDS, NOT_IN_FORM, SettingsScreen
from specsearch.app.settings import Settings, SettingsStore, env_overrides, resolve_models, settings_path
from specsearch.cli.main import build_parser
from specsearch.cli.search_args import search_config
from specsearch.core.api import Solver
from specsearch.core.config import SearchConfig, search_options
from specsearch.core.errors import SpecSearchError
from specsearch.core.generators import SmallOnly
from specsearch.core.methods import METHODS, Method, method_names, missing_roles, register_method

SEARCH_FIELDS = [f.name for f in dataclasses.fields(SearchConfig)]


@contextmanager
def toy_method(name: str = "toy", roles: tuple[str, ...] = ("small",)):
    """A method registered for the test only: the small model writes every child."""
    register_method(Method(name, lambda models, threshold: SmallOnly(models), roles, "a method from a test"))
    try:
        yield name
    finally:
        METHODS.pop(name)


def other_value(name: str) -> Any:
    """A valid value of SearchConfig field ``name`` that is not its default."""
    option = next(o for o in search_options() if o.name == name)
    if option.choices is not None:
        return next(c for c in option.choices if c != option.default)
    if option.kind is int:
        return option.default + 1
    if option.kind is float:
        return 0.25 if option.default != 0.25 else 0.5
    return option.default + "!"


class TestMethodRegistry:
    def test_a_registered_method_is_a_choice_of_solve_bench_and_searchconfig(self, capsys):
        with toy_method():
            parser = build_parser()  # choices are read when the parser is built
            with pytest.raises(SystemExit):
                parser.parse_args(["solve", "--help"])
            assert "toy" in capsys.readouterr().out
            assert parser.parse_args(["solve", "q", "--method", "toy"]).method == "toy"
            assert parser.parse_args(["bench", "--methods", "ar,toy"]).methods == ["ar", "toy"]
            with pytest.raises(SystemExit):
                parser.parse_args(["bench", "--help"])
            assert "toy" in capsys.readouterr().out
            assert SearchConfig(method="toy").method == "toy"
        assert "toy" not in method_names()
        with pytest.raises(ValueError, match="unknown method 'toy'"):
            SearchConfig(method="toy")
        with pytest.raises(SystemExit):
            build_parser().parse_args(["bench", "--methods", "ar,toy"])

    @async_test
    async def test_a_registered_method_is_in_the_settings_menu(self):
        from textual.widgets import Select

        with toy_method():
            app = SpecSearchApp(SettingsStore.load(environ={}), check_models=False)
            async with app.run_test(size=(140, 45)) as pilot:
                await pilot.press("f7")
                await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
                select = app.screen.query_one("#set-method", Select)
                offered = tuple(value for _, value in select._options if value is not Select.BLANK)
                assert offered == method_names() and "toy" in offered
            action = next(a for a in build_tui_parser()._actions if a.dest == "method")
            assert "toy" in action.choices

    def test_the_solver_loads_the_roles_the_entry_names(self, tiny):
        with toy_method(), Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"]) as solver:
            result = solver.solve("What is 3 + 4?", SearchConfig(method="toy", max_depth=1, max_step_tokens=4,
                                                                 children=2))
            assert result.nodes and all(n.source == "small" for n in result.nodes)
            assert "large" not in solver._engines  # the toy method's entry names only the small model


class TestMissingModelsFromTheRegistry:
    def test_one_answer_for_resolve_and_the_solver(self, tiny):
        assert missing_roles("ar", ["small", "prm"]) == ["large"]
        assert missing_roles("specsearch", []) == ["small", "large", "prm"]
        with toy_method("toy-large", ("large",)):
            resolved = resolve_models(Settings(small=str(tiny["draft"])), [], {})
            assert resolved.missing_for("toy-large") == ["large"] and resolved.missing_for("small") == []
            with Solver(small=tiny["draft"], prm=tiny["draft"]) as solver:
                with pytest.raises(SpecSearchError, match="method toy-large needs a large model"):
                    solver.solve("q", SearchConfig(method="toy-large", max_depth=1))
                assert "small" not in solver._engines  # nothing the method does not need was loaded


class TestSearchFlagsDerivedFromSearchConfig:
    @pytest.mark.parametrize("name", SEARCH_FIELDS)
    def test_every_field_is_settable_as_its_own_flag(self, name):
        value = other_value(name)
        flag = "--" + name.replace("_", "-")
        for command in (["solve", "q"], ["bench"]):
            if name == "method" and command == ["bench"]:
                continue  # bench takes --methods
            args = build_parser().parse_args(command + [flag, str(value)])
            config = search_config(args, None if command == ["solve", "q"] else "ar")
            assert getattr(config, name) == value
            others = {k: v for k, v in config.to_dict().items() if k not in (name, "method", "threshold_mode")}
            assert others == {k: v for k, v in SearchConfig().to_dict().items() if k in others}

    def test_short_flags_kept_from_before(self):
        args = build_parser().parse_args(["solve", "q", "--beam", "3", "--depth", "5", "--step-tokens", "7",
                                          "--quantile", "0.2", "--vote", "--fixed-beta", "0.4",
                                          "--threshold-margin", "0.1"])
        config = search_config(args)
        assert (config.beam_width, config.max_depth, config.max_step_tokens, config.threshold_quantile) == \
            (3, 5, 7, 0.2)
        assert config.answer_selection == "weighted_vote" and config.threshold_margin == 0.1
        assert (config.threshold_mode, config.fixed_beta) == ("fixed", 0.4)  # --fixed-beta alone: fixed
        explicit = search_config(build_parser().parse_args(
            ["solve", "q", "--fixed-beta", "0.4", "--threshold-mode", "adaptive"]))
        assert explicit.threshold_mode == "adaptive"

    def test_defaults_are_searchconfigs(self):
        assert search_config(build_parser().parse_args(["solve", "q"])) == SearchConfig()

    def test_a_bad_value_is_a_one_line_error(self, capsys):
        from specsearch.cli.main import main

        assert main(["solve", "q", "--beam", "0", "--small", "x"]) == 2
        assert "beam_width must be at least 1" in capsys.readouterr().err


class TestSettingsDerivedFromSearchConfig:
    def test_every_field_round_trips_through_save_env_and_command_line(self):
        changed = {name: other_value(name) for name in SEARCH_FIELDS}
        store = SettingsStore.load(environ={})
        store.save(Settings(**changed))
        assert SettingsStore.load(environ={}).effective.search_config() == SearchConfig(**changed)
        environ = {f"SPECSEARCH_{k.upper()}": str(v) for k, v in changed.items()}
        assert env_overrides(environ) == changed
        argv = [x for k, v in changed.items() for x in ("--" + k.replace("_", "-"), str(v))]
        assert overrides_from_args(build_tui_parser().parse_args(argv)) == changed

    def test_files_saved_before_threshold_mode_was_a_setting(self):
        settings_path().write_text(json.dumps({"fixed_beta": None, "beam_width": 3}), encoding="utf-8")
        assert SettingsStore.load(environ={}).effective.search_config().threshold_mode == "adaptive"
        settings_path().write_text(json.dumps({"fixed_beta": 0.4}), encoding="utf-8")
        config = SettingsStore.load(environ={}).effective.search_config()
        assert (config.threshold_mode, config.fixed_beta) == ("fixed", 0.4)
        assert SettingsStore.load(environ={"SPECSEARCH_FIXED_BETA": "0.3"}).effective.threshold_mode == "fixed"

    @async_test
    async def test_the_form_edits_every_field_but_the_documented_ones(self):
        assert set(FORM_FIELDS) | set(NOT_IN_FORM) == {f.name for f in dataclasses.fields(Settings)}
        assert {"aggregation", "answer_selection", "threshold_mode"} <= set(FORM_FIELDS)
        changed = {name: other_value(name) for name in SEARCH_FIELDS if name in FORM_FIELDS}
        app = SpecSearchApp(SettingsStore.load(environ={}), check_models=False)
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.press("f7")
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
            for name, value in changed.items():
                app.screen.set_value(name, value)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
            assert {k: getattr(app.settings, k) for k in changed} == changed
            assert {k: getattr(app.settings, k) for k in NOT_IN_FORM} == \
                {k: getattr(SearchConfig(), k) for k in NOT_IN_FORM}  # kept, not blanked


class TestSavedConfigIsWhatRan:
    def test_spec_tokens_is_the_solvers_and_not_recorded_as_a_search_option(self, tiny):
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"], spec_tokens=3) as solver:
            result = solver.solve("What is 3 + 4?", SearchConfig(max_depth=1, max_step_tokens=4, children=2))
            assert solver.models("sps").speculative_decoder.policy.k_init == 3
        assert "spec_tokens" not in result.config
        assert set(result.config) - {"prm"} == set(SEARCH_FIELDS)
        assert SearchConfig.from_dict({**SearchConfig().to_dict(), "spec_tokens": 4}) == SearchConfig()


# ------------------------------------------------------- every number checked ---
INF, NAN = float("inf"), float("nan")
# field: (values at the edges that must pass, values that must be refused)
SEARCH_EDGES = {
    "beam_width": ([1, 64], [0, -1, 2.0, "2", None, True]),
    "children": ([1], [0, -3]),
    "max_depth": ([1], [0]),
    "max_step_tokens": ([1], [0]),
    "mcts_iterations": ([1, 1000], [0, 1.5]),
    "mcts_exploration": ([0.0, 0, 100.0], [-0.1, NAN, INF]),
    "n_solutions": ([1], [0, -1]),
    "dvts_subtrees": ([1], [0, 2.5]),
    "token_budget": ([0, 10**9], [-1, 1.5, NAN]),
    "join_lead_ins": ([0, 2, 10], [-1, 1.5, NAN]),
    "temperature": ([0.0, 0, 1e6], [-1e-9, NAN, INF, "0.7"]),
    "top_k": ([0, 10**9], [-1, 1.5, NAN]),
    "top_p": ([0.0, 1.0], [-0.01, 1.01, NAN, INF]),
    "min_p": ([0.0, 1.0], [-0.01, 1.01, NAN]),
    "seed": ([0, -5, 2**64], [1.5, NAN]),
    "theta": ([0.0, 1.0], [-0.1, 1.1, NAN, INF]),
    "threshold_quantile": ([0.0, 1.0], [2.0, -0.1, NAN, -INF]),
    "fixed_beta": ([INF, -INF, 0.0, -3.0, 7.0], [NAN, "0.5"]),
    "threshold_margin": ([-1.0, 0.0, 1.0], [INF, -INF, NAN]),
}


class TestEveryNumberIsChecked:
    def test_every_number_field_of_searchconfig_has_bounds_and_edges(self):
        from specsearch.core.config import SEARCH_BOUNDS

        numbers = {o.name for o in search_options() if o.kind in (int, float)}
        assert set(SEARCH_BOUNDS) == numbers == set(SEARCH_EDGES)

    @pytest.mark.parametrize("name", sorted(SEARCH_EDGES))
    def test_searchconfig_edges(self, name):
        good, bad = SEARCH_EDGES[name]
        for value in good:
            assert getattr(SearchConfig(**{name: value}), name) == value
        for value in bad:
            with pytest.raises(ValueError, match=name) as caught:
                SearchConfig(**{name: value})
            assert "\n" not in str(caught.value)

    def test_replace_and_from_dict_check_too(self):
        with pytest.raises(ValueError, match="temperature must be a number, not NaN"):
            dataclasses.replace(SearchConfig(), temperature=NAN)
        with pytest.raises(ValueError, match=r"threshold_quantile must be in \[0, 1\], not 2"):
            SearchConfig.from_dict({"threshold_quantile": 2})

    def test_sampling_params(self):
        from specsearch.core.sampling import SamplingParams

        assert SamplingParams(0.0, 0, 0.0, 1.0).greedy
        for bad in ({"temperature": NAN}, {"temperature": INF}, {"top_p": 1.5}, {"min_p": -0.5}, {"top_k": -1}):
            with pytest.raises(ValueError, match=next(iter(bad))):
                SamplingParams(**bad)

    @pytest.mark.parametrize("name,good,bad", [
        ("n_ctx", [None, 1, 2**31 - 1], [0, -5, 2**31, 2**32 - 5, 512.0, True]),
        ("n_gpu_layers", [None, -1, 0, 999], [-2, -99, 2**31, "auto"]),
        ("n_threads", [None, 1, 512], [0, -1, 513, 10**6]),
        ("n_seq_max", [1, 64], [0, None]),
        ("n_batch", [1, 512], [0, -512]),
    ])
    def test_load_options_edges(self, name, good, bad):
        from specsearch.core.engine import LoadOptions

        for value in good:
            assert getattr(LoadOptions(**{name: value}), name) == value
        for value in bad:
            with pytest.raises(ValueError, match=name):
                LoadOptions(**{name: value})

    def test_the_app_refuses_what_the_core_refuses(self):
        with pytest.raises(ValueError, match="temperature must be a number, not NaN"):
            Settings(temperature=NAN).validate()
        with pytest.raises(ValueError, match="SPECSEARCH_THETA: theta: expected float"):
            env_overrides({"SPECSEARCH_THETA": "x"})
        assert env_overrides({"SPECSEARCH_FIXED_BETA": "inf"}) == {"fixed_beta": INF}
        store = SettingsStore.load(environ={"SPECSEARCH_QUANTILE": "2"})
        with pytest.raises(ValueError, match=r"threshold_quantile must be in \[0, 1\]"):
            store.effective.validate()

"""The app's settings: the models to load, plus every search option, persisted as JSON.

``Settings`` is two parts: :class:`ModelSettings`, written here (which models,
how to load them, how to score steps), and every field of the core's
SearchConfig, derived from it with the same name, type and default, so a new
search option appears here, in the settings form and on ``specsearch-tui``'s
command line by adding one field to SearchConfig.  :func:`setting_options`
describes every field once (type, choices, help from its docstring, short
name) for the form, the command line and the environment variables.

Layers, lowest first: the field defaults, ``settings.json`` in the user config
dir, environment variables ``SPECSEARCH_<FIELD>`` (or the short name, e.g.
``SPECSEARCH_BEAM``), then ``specsearch-tui`` command-line options.  Env and
command-line values apply to this run only: saving from the settings screen
writes only what the user changed there.  A settings.json that is not an
object of valid settings (bad JSON, a list, a field of the wrong type or out
of range) is set aside as ``settings.json.corrupt-<time>`` and the defaults
apply; :attr:`SettingsStore.warning` says so.

No Textual imports here.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from specsearch.core.atomic import atomic_write_json
from specsearch.core.config import SearchConfig, implied_options, search_options
from specsearch.core.engine import LOAD_BOUNDS
from specsearch.core.options import Option, describe_fields
from specsearch.core.prm import DEFAULT_PRM_KIND, prm_kind_names
from specsearch.models import ROLES, ModelEntry
from specsearch.models.resolve import LoadOverrides, ResolvedModels, registry_entries  # noqa: F401 (re-exported for screens)
from specsearch.models.resolve import resolve_models as _resolve
from specsearch.models.locations import config_dir

from .json_files import SetAside, check_shape, read_or_set_aside


@dataclass
class ModelSettings:
    """Which models a search loads, how it loads them and how steps are scored."""

    small: str | None = None
    """Small (draft) model: a GGUF path or a model-manager name. Empty: the model manager's default."""
    large: str | None = None
    """Large (target) model: a GGUF path or a model-manager name. Empty: the model manager's default."""
    prm: str | None = None
    """Reward model (PRM): a GGUF path or a model-manager name. Empty: the default, else the small model as judge."""
    prm_kind: str = DEFAULT_PRM_KIND
    """How steps are scored: auto (the shipped learned head for the model, else judge), judge (an instruct model answers yes/no), a trained PRM's format, head (a learned head), arith (no model, arithmetic only); see `specsearch solve --help`."""
    prm_head: str | None = None
    """Head file (.npz) for prm_kind head. Empty: the head shipped for the reward model."""
    arith_check: bool = True
    """Exact arithmetic check on top of the reward model: a step whose written equation is wrong scores as wrong."""
    n_gpu_layers_small: int | None = None
    """GPU layers of the small model (empty: all when llama.cpp has a GPU backend, else 0)."""
    n_gpu_layers_large: int | None = None
    """GPU layers of the large model (empty: automatic)."""
    n_gpu_layers_prm: int | None = None
    """GPU layers of the reward model (empty: automatic)."""
    n_ctx_small: int | None = None
    """Context tokens of the small model (empty: automatic)."""
    n_ctx_large: int | None = None
    """Context tokens of the large model (empty: automatic)."""
    n_ctx_prm: int | None = None
    """Context tokens of the reward model (empty: automatic)."""
    n_threads: int | None = None
    """CPU threads per model (empty: all cores)."""


LOAD_SETTING_FIELDS = {
    **{f"n_gpu_layers_{role}": "n_gpu_layers" for role in ROLES},
    **{f"n_ctx_{role}": "n_ctx" for role in ROLES},
    "n_threads": "n_threads",
}
"""Each load setting -> the LoadOptions field (core.engine.LOAD_BOUNDS) whose range it takes."""

MODEL_SHORT_NAMES = {"n_threads": "threads", "prm_head": "head"}
"""Short names of model settings, as `specsearch solve` spells them (--threads, SPECSEARCH_THREADS)."""

_SEARCH_TYPES = typing.get_type_hints(SearchConfig)
_SearchFields = dataclasses.make_dataclass(
    "_SearchFields",
    [(f.name, _SEARCH_TYPES[f.name], dataclasses.field(default=f.default)) for f in fields(SearchConfig)],
)
"""SearchConfig's fields without its checks, so a Settings holding a bad value can
be built, shown and refused with a message (validate) instead of failing to exist."""

SEARCH_FIELD_NAMES = tuple(f.name for f in fields(SearchConfig))


@dataclass
class Settings(_SearchFields, ModelSettings):
    """The app's settings: ModelSettings' fields, then SearchConfig's (same names, types, defaults)."""

    def search_config(self, method: str | None = None) -> SearchConfig:
        """The core's SearchConfig for these settings (``method`` overrides)."""
        values = {name: getattr(self, name) for name in SEARCH_FIELD_NAMES}
        return SearchConfig(**{**values, "method": method or self.method})

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.prm_kind not in prm_kind_names():
            raise ValueError(f"prm_kind: choose from {', '.join(prm_kind_names())}")
        for name, load_field in LOAD_SETTING_FIELDS.items():  # the engine's own limits, checked up front
            LOAD_BOUNDS[load_field].check(name, getattr(self, name))
        self.search_config()  # the core's own checks of every search option

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Settings":
        """Known keys only, each converted to its field's type; bad values raise ValueError."""
        data = dict(data)
        if "fixed_beta" in data and data["fixed_beta"] is None:
            del data["fixed_beta"]  # files saved before threshold_mode was a setting: null meant adaptive
        data = implied_options(data)  # ... and a number meant fixed
        options = setting_options()
        return dataclasses.replace(cls(), **{k: convert(k, v, options[k]) for k, v in data.items() if k in FIELD_NAMES})


FIELD_NAMES = tuple(f.name for f in fields(Settings))


def setting_options() -> dict[str, Option]:
    """Every field of Settings, described once: type, choices, help and short name.
    Read when asked, so a method or PRM kind registered later is among the choices."""
    models = describe_fields(ModelSettings, {"prm_kind": prm_kind_names()}, MODEL_SHORT_NAMES)
    return {o.name: o for o in (*models, *search_options())}


def field_docs() -> dict[str, str]:
    """Each field's help: its docstring (ModelSettings' here, SearchConfig's in the core)."""
    return {name: option.help for name, option in setting_options().items()}


def convert(name: str, value: Any, option: Option | None = None) -> Any:
    """``value`` (from JSON, an env var or a form) as the type of field ``name``
    (``option``: its Option, when the caller already has them all).
    Empty strings and None mean "unset" for optional fields."""
    option = option or setting_options()[name]
    kind = option.kind
    if value is None or (isinstance(value, str) and value.strip() == "" and (option.optional or kind is not str)):
        if option.optional:
            return None
        raise ValueError(f"{name} needs a value")
    try:
        if isinstance(value, bool) and kind is not bool:
            raise ValueError  # JSON true/false where a number or text belongs
        if kind is bool:
            return _to_bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value) if not isinstance(value, str) else int(value.strip())
        if kind is float:
            return float(value)
        if not isinstance(value, str):
            raise ValueError  # a list or a number where a name belongs
        # Model choices are names and paths (stray spaces dropped); search text is taken as written.
        return value if name in SEARCH_FIELD_NAMES else value.strip()
    except (TypeError, ValueError):
        expected = "on or off" if kind is bool else kind.__name__
        raise ValueError(f"{name}: expected {expected}, got {value!r}") from None


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _to_bool(value: Any) -> bool:
    """True/False from JSON, a form (on/off) or an env var (1/0, true/false, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError


def env_name(name: str) -> str:
    return f"SPECSEARCH_{name.upper()}"


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Settings given by ``SPECSEARCH_<FIELD>`` (or short name) variables."""
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, option in setting_options().items():
        for key in (env_name(name), *(env_name(alias) for alias in option.aliases)):
            if key in environ:
                try:
                    out[name] = convert(name, environ[key], option)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
    return out


def _saved_settings(data: Any) -> Settings:
    """The settings in a parsed settings.json; ValueError if it is not an object of valid settings."""
    check_shape(data, dict[str, Any])
    settings = Settings.from_dict(data)
    settings.validate()
    return settings


def settings_path() -> Path:
    return config_dir() / "settings.json"


class SettingsStore:
    """The saved settings plus this run's overrides (env, command line)."""

    def __init__(self, saved: Settings, overrides: dict[str, Any] | None = None, warning: str | None = None) -> None:
        self.saved = saved
        self.overrides = dict(overrides or {})
        self.warning = warning  # a problem reading settings.json, shown once

    @classmethod
    def load(cls, cli_overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> "SettingsStore":
        saved, warning = Settings(), None
        path = settings_path()
        if path.exists():
            try:
                saved = read_or_set_aside(path, _saved_settings)
            except SetAside as exc:
                warning = str(exc)
            except OSError as exc:
                warning = f"{path} ignored: {exc}"
        overrides = implied_options(env_overrides(environ))
        overrides.update(implied_options({k: v for k, v in (cli_overrides or {}).items() if v is not None}))
        return cls(saved, overrides, warning)

    @property
    def effective(self) -> Settings:
        return dataclasses.replace(self.saved, **self.overrides)

    def save(self, edited: Settings) -> None:
        """Persist ``edited`` (the effective settings as the user left them).

        A field still equal to its env/command-line override keeps its saved
        value (the override stays for this run only); a field the user changed
        is saved and no longer overridden.
        """
        edited.validate()
        saved = dataclasses.asdict(self.saved)
        for name in FIELD_NAMES:
            value = getattr(edited, name)
            if name in self.overrides and self.overrides[name] == value:
                continue
            self.overrides.pop(name, None)
            saved[name] = value
        self.saved = Settings(**saved)
        atomic_write_json(settings_path(), self.saved.to_dict())


# ---------------------------------------------------------------- models ---
def resolve_models(settings: Settings, entries: list[ModelEntry] | None = None,
                   defaults: dict[str, ModelEntry] | None = None) -> ResolvedModels:
    """The models a search with these settings would load (see specsearch.models.resolve)."""
    choices = {role: getattr(settings, role) for role in ROLES}
    overrides = {
        role: LoadOverrides(getattr(settings, f"n_gpu_layers_{role}"), getattr(settings, f"n_ctx_{role}"),
                            settings.n_threads)
        for role in ROLES
    }
    return _resolve(choices, overrides, entries, defaults)


def missing_message(resolved: ResolvedModels, method: str) -> str | None:
    """One friendly paragraph saying what is missing for ``method``, or None."""
    missing = resolved.missing_for(method)
    if not missing and not resolved.problems:
        return None
    lines = []
    if missing:
        lines.append(f"No {' / '.join(missing)} model configured for method {method}.")
    lines += resolved.problems
    lines.append("Pick models in the model manager (F6) or Settings (F7), "
                 "or run `specsearch models pack` / `specsearch models pull` in a shell.")
    return " ".join(lines)

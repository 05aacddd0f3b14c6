"""The app's settings: one dataclass, a docstring per field, persisted as JSON.

Layers, lowest first: the field defaults, ``settings.json`` in the user config
dir, environment variables ``SPECSEARCH_<FIELD>`` (plus the short aliases in
:data:`ALIASES`, e.g. ``SPECSEARCH_BEAM``), then ``specsearch-tui`` command-line
options.  Env and command-line values apply to this run only: saving from the
settings screen writes only what the user changed there.

No Textual imports here.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import os
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from specsearch.core.atomic import atomic_write_json
from specsearch.core.config import METHODS, SearchConfig, threshold_fields
from specsearch.core.prm import DEFAULT_PRM_KIND, prm_kind_names
from specsearch.models import ROLES, ModelEntry
from specsearch.models.resolve import LoadOverrides, ResolvedModels, registry_entries  # noqa: F401 (re-exported for screens)
from specsearch.models.resolve import resolve_models as _resolve
from specsearch.models.locations import config_dir



@dataclass
class Settings:
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
    method: str = "specsearch"
    """specsearch (small drafts, PRM checks, large rewrites), ar (large only), sps (large + token drafting), small."""
    beam_width: int = 2
    """Beams kept after each step (B)."""
    children: int = 4
    """Thoughts generated per beam per step (N)."""
    max_depth: int = 12
    """Most steps (thoughts) in a solution."""
    max_step_tokens: int = 192
    """Token budget of one thought."""
    temperature: float = 0.7
    """Sampling temperature (0 = greedy)."""
    theta: float = 0.9
    """θ: EMA weight of the previous threshold, β' = θ·β + (1-θ)·Θ(large-model scores)."""
    threshold_stat: str = "mean"
    """Θ: statistic of the large model's step scores that sets β: mean, max or quantile."""
    threshold_quantile: float = 0.5
    """q for Θ = quantile."""
    fixed_beta: float | None = None
    """A constant threshold β instead of the adaptive one (empty: adaptive)."""
    threshold_margin: float = 0.0
    """Added to β before drafts are judged: higher keeps fewer drafts (slower, safer with a weak judge)."""
    seed: int = 0
    """Sampling seed: the same seed gives the same search."""
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

    # ------------------------------------------------------------------ derived
    def search_config(self, method: str | None = None) -> SearchConfig:
        """The core's SearchConfig for these settings (``method`` overrides)."""
        return SearchConfig(
            method=method or self.method,
            beam_width=self.beam_width,
            children=self.children,
            max_depth=self.max_depth,
            max_step_tokens=self.max_step_tokens,
            temperature=self.temperature,
            seed=self.seed,
            theta=self.theta,
            threshold_stat=self.threshold_stat,  # type: ignore[arg-type]
            threshold_quantile=self.threshold_quantile,
            **threshold_fields(self.fixed_beta),
            threshold_margin=self.threshold_margin,
        )

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.method not in METHODS:
            raise ValueError(f"method: choose from {', '.join(METHODS)}")
        if self.prm_kind not in prm_kind_names():
            raise ValueError(f"prm_kind: choose from {', '.join(prm_kind_names())}")
        if self.threshold_stat not in ("mean", "max", "quantile"):
            raise ValueError("threshold_stat (Θ): mean, max or quantile")
        if not 0.0 <= self.threshold_quantile <= 1.0:
            raise ValueError("threshold_quantile must lie in [0, 1]")
        if self.temperature < 0:
            raise ValueError("temperature must not be negative")
        for name in ("n_gpu_layers_small", "n_gpu_layers_large", "n_gpu_layers_prm"):
            value = getattr(self, name)
            if value is not None and value < -1:
                raise ValueError(f"{name} must be -1 (all) or more")
        for name in ("n_ctx_small", "n_ctx_large", "n_ctx_prm", "n_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        self.search_config()  # the core's own checks (beam, children, depth, θ)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Settings":
        """Known keys only, each converted to its field's type; bad values raise ValueError."""
        return dataclasses.replace(cls(), **{k: convert(k, v) for k, v in data.items() if k in FIELD_NAMES})


FIELD_NAMES = tuple(f.name for f in fields(Settings))

# Short names, used both as command-line flags (--beam) and env vars (SPECSEARCH_BEAM),
# the same flags as `specsearch solve`.
ALIASES = {
    "beam_width": "beam",
    "max_depth": "depth",
    "max_step_tokens": "step_tokens",
    "threshold_quantile": "quantile",
    "n_threads": "threads",
    "prm_head": "head",
}


def field_type(name: str) -> type:
    """bool, int, float or str: the base type of a field (its annotation is a string)."""
    annotation = str(next(f.type for f in fields(Settings) if f.name == name))
    for t in (bool, int, float, str):
        if annotation.startswith(t.__name__):
            return t
    raise TypeError(annotation)


def optional(name: str) -> bool:
    return "None" in str(next(f.type for f in fields(Settings) if f.name == name))


def convert(name: str, value: Any) -> Any:
    """``value`` (from JSON, an env var or a form) as the type of field ``name``.
    Empty strings and None mean "unset" for optional fields."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if optional(name):
            return None
        raise ValueError(f"{name} needs a value")
    kind = field_type(name)
    try:
        if kind is bool:
            return _to_bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value) if not isinstance(value, str) else int(value.strip())
        if kind is float:
            return float(value)
        return str(value).strip()
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


@lru_cache(maxsize=1)
def field_docs() -> dict[str, str]:
    """Each field's docstring, read from this module's source (one source of truth)."""
    docs: dict[str, str] = {}
    try:
        tree = ast.parse(inspect.getsource(Settings))
    except (OSError, TypeError):
        return docs
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(getattr(after, "value", None), ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = after.value.value
    return docs


def env_name(name: str) -> str:
    return f"SPECSEARCH_{name.upper()}"


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Settings given by ``SPECSEARCH_<FIELD>`` (or alias) variables."""
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name in FIELD_NAMES:
        for key in (env_name(name), env_name(ALIASES[name]) if name in ALIASES else None):
            if key and key in environ:
                try:
                    out[name] = convert(name, environ[key])
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
    return out


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
                data = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                saved = Settings.from_dict(data)
            except (OSError, ValueError) as exc:
                warning = f"{path} ignored: {exc}"
        overrides = env_overrides(environ)
        overrides.update({k: v for k, v in (cli_overrides or {}).items() if v is not None})
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

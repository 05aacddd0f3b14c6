"""The search methods by name: what each one's generator is and which models it needs.

This registry is the one place a method is described.  SearchConfig validates
``method`` against it, the Solver loads the models its entry names, resolve and
the generators ask :func:`missing_roles` whether those models are there, and
the CLI's ``--method``/``--methods`` choices and the app's menus list
:func:`method_names`.  A new method is one :func:`register_method` call.

The generator classes live in core.generators; see its docstring for how each
built-in method makes a step's thoughts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .auto_method import AutoMethod
from .errors import SpecSearchError
from .generators import AutoRegressive, Models, SmallOnly, SpecSearch, SpeculativeSampling, ThoughtGenerator
from .threshold import Threshold

MODEL_ROLES = ("small", "large", "prm")
"""The roles a model can play in a search: draft, target, reward model."""

ROLE_NAMES = {"small": "a small model (--small)", "large": "a large model (--large)", "prm": "a reward model (--prm)"}


@dataclass(frozen=True)
class Method:
    name: str
    make: Callable[[Models, Threshold], ThoughtGenerator]
    """The method's thought generator over the loaded models and the search's threshold."""
    roles: tuple[str, ...]
    """The generator models it needs, "small" and/or "large"; every method also needs a reward model."""
    description: str
    """One line, shown in --help and the app's menus."""

    @property
    def needs(self) -> tuple[str, ...]:
        """Every role the method needs: its generator models, then the reward model."""
        return self.roles + ("prm",)


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    unknown = set(method.roles) - {"small", "large"}
    if unknown:
        raise ValueError(f"method {method.name!r}: unknown roles {sorted(unknown)}; use small and/or large")
    METHODS[method.name] = method
    return method


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def get_method(name: str) -> Method:
    """The registered method called ``name``; SpecSearchError names the choices otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise SpecSearchError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


def missing_roles(method: str, available: Iterable[str]) -> list[str]:
    """The roles ``method`` needs that are not among ``available``, in MODEL_ROLES order.

    The one answer to "does this method have its models?": model resolution,
    the Solver's generators and the app's warnings all ask it."""
    have = set(available)
    return [role for role in MODEL_ROLES if role in get_method(method).needs and role not in have]


def describe_missing(method: str, missing: Iterable[str]) -> str:
    return f"method {method} needs " + ", ".join(ROLE_NAMES[role] for role in missing)


def make_generator(method: str, models: Models, threshold: Threshold) -> ThoughtGenerator:
    """The generator of ``method`` over ``models``; SpecSearchError says which model is missing."""
    missing = missing_roles(method, models.roles())
    if missing:
        raise SpecSearchError(describe_missing(method, missing))
    return get_method(method).make(models, threshold)


for _method in (
    Method("specsearch", lambda models, threshold: SpecSearch(models, threshold), ("small", "large"),
           "the small model drafts, the reward model checks, the large model rewrites rejected steps"),
    Method("ar", lambda models, threshold: AutoRegressive(models), ("large",),
           "the large model alone (baseline)"),
    Method("sps", lambda models, threshold: SpeculativeSampling(models), ("small", "large"),
           "the large model with token-level drafting by the small model (baseline)"),
    Method("small", lambda models, threshold: SmallOnly(models), ("small",),
           "the small model alone (lower bound)"),
    Method("auto", lambda models, threshold: AutoMethod(models, threshold), ("small", "large"),
           "specsearch while the cost model predicts it beats ar, ar (or sps) when not"),
):
    register_method(_method)

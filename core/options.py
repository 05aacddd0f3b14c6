"""A dataclass's fields as user-facing options: type, choices, default and help.

The help is the attribute docstring written under each field (parsed once
from the class source), so a field and its description sit together and every
surface (the CLI's flags, the app's settings form, its command line and
environment variables) shows the same text.  core.config describes
SearchConfig this way; the app describes its model settings with it too.
:func:`argparse_options` turns an Option into a command-line flag, for the
``specsearch`` CLI and ``specsearch-tui`` alike.  :class:`Bounds` says which
numbers a field takes; the dataclasses check their fields with it (SearchConfig,
the engine's LoadOptions and SamplingParams), so a value is refused once, where
it is defined, whichever surface gave it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal


@dataclass(frozen=True)
class Option:
    name: str
    kind: type
    """bool, int, float or str: what a typed-in value is converted to."""
    optional: bool
    """None is a value (an empty entry means "unset")."""
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    choice_help: str = ""
    """"choice: what it does; ..." when the choices have descriptions."""
    aliases: tuple[str, ...] = ()
    """Short names kept as extra flags and environment variables (beam for beam_width)."""

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple("--" + n.replace("_", "-") for n in (self.name, *self.aliases))


@dataclass(frozen=True)
class Bounds:
    """The numbers a field takes: ``low <= value <= high``, never NaN, and an
    infinity only when ``infinite`` (an infinite β has a meaning, an infinite
    temperature has none).  ``kind`` int also refuses fractions; None passes
    only when ``optional`` (unset: automatic)."""

    low: float = -math.inf
    high: float = math.inf
    kind: type = float
    infinite: bool = False
    optional: bool = False

    def check(self, name: str, value: Any) -> None:
        """Raise ValueError (one line, naming ``name``) unless ``value`` is one of these numbers."""
        if value is None and self.optional:
            return
        wanted = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise ValueError(f"{name} must be {'a whole number' if self.kind is int else 'a number'}, "
                             f"not {value!r}")
        if math.isnan(value):
            raise ValueError(f"{name} must be a number, not NaN")
        if math.isinf(value) and not self.infinite:
            raise ValueError(f"{name} must be finite, not {value}")
        if not self.low <= value <= self.high:
            raise ValueError(f"{name} must be {self.describe()}, not {value}")

    def describe(self) -> str:
        """"at least 1", "in [0, 1]", ...: the range in words."""
        def num(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else str(x)
        if math.isinf(self.low) and math.isinf(self.high):
            return "a finite number" if not self.infinite else "a number"
        if math.isinf(self.high):
            return f"at least {num(self.low)}"
        if math.isinf(self.low):
            return f"at most {num(self.high)}"
        return f"in [{num(self.low)}, {num(self.high)}]"


def check_bounds(obj: Any, bounds: Mapping[str, Bounds]) -> None:
    """Check each named field of ``obj`` against its Bounds."""
    for name, bound in bounds.items():
        bound.check(name, getattr(obj, name))


def argparse_options(option: Option, help_suffix: str = "") -> dict[str, Any]:
    """``add_argument(*option.flags, **these)``: typed, with the choices and the help.  The
    default is None, so the caller can tell a given flag from the field's own default."""
    help_text = " ".join(filter(None, (option.help, option.choice_help, help_suffix)))
    kwargs: dict[str, Any] = {"dest": option.name, "default": None, "help": help_text.replace("%", "%%")}
    if option.kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction  # --arith-check / --no-arith-check
    else:
        kwargs["type"] = option.kind
    if option.choices is not None:
        kwargs["choices"] = option.choices
    elif option.kind in (int, float):
        kwargs["metavar"] = "N" if option.kind is int else "X"
    return kwargs


def describe_fields(
    cls: type,
    choices: Mapping[str, Mapping[str, str] | tuple[str, ...]] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> tuple[Option, ...]:
    """An Option per field of dataclass ``cls``, in field order.

    A Literal annotation gives the field's choices; ``choices`` gives them for
    fields typed ``str`` whose values come from a registry (name -> description,
    or names alone).  ``aliases`` maps a field to its short name."""
    hints = typing.get_type_hints(cls)
    docs = attribute_docs(cls)
    choices, aliases = choices or {}, aliases or {}
    out = []
    for f in dataclasses.fields(cls):
        kind, optional, literal = value_type(hints[f.name])
        named = choices.get(f.name)
        described = named if isinstance(named, Mapping) else {}
        out.append(Option(
            name=f.name, kind=kind, optional=optional,
            default=f.default if f.default is not dataclasses.MISSING else f.default_factory(),  # type: ignore[misc]
            help=docs.get(f.name, ""),
            choices=tuple(named) if named is not None else literal,
            choice_help="; ".join(f"{k}: {v}" for k, v in described.items()),
            aliases=(aliases[f.name],) if f.name in aliases else (),
        ))
    return tuple(out)


def value_type(annotation: Any) -> tuple[type, bool, tuple[str, ...] | None]:
    """(base type, None allowed, Literal choices or None) of a field's annotation."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"unsupported option type {annotation!r}")
        kind, _, literal = value_type(rest[0])
        return kind, True, literal
    if origin is Literal:
        return type(args[0]), False, tuple(args)
    if annotation in (bool, int, float, str):
        return annotation, False, None
    raise TypeError(f"unsupported option type {annotation!r}")


@lru_cache(maxsize=None)
def attribute_docs(cls: type) -> dict[str, str]:
    """The docstring under each annotated attribute of ``cls``, read from its source, on one line."""
    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a generated class, a frozen build): no help
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs

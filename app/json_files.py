"""Reading the JSON files the app keeps (settings, conversations) without trusting them.

:func:`read_or_set_aside` reads a file and hands the parsed JSON to a parser;
a file that does not parse, or parses to the wrong shape, is moved aside next
to itself as ``<name>.corrupt-<time>`` by the model registry's own
``set_aside`` (so every such file is found the same way), never deleted, and
the caller gets :class:`SetAside`, whose message says which file went where
and why.  :func:`check_shape` compares parsed JSON with the type hints of the
dataclass that will read it, so a null where text belongs is refused here
rather than failing later in a widget.  No Textual imports here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar, Union

from specsearch.models.registry_file import set_aside

T = TypeVar("T")


class SetAside(Exception):
    """The file was not what it should be and was moved aside; the message says where and why."""


def read_or_set_aside(path: Path, parse: Callable[[Any], T]) -> T:
    """``parse`` of the JSON in ``path``.  When the file does not parse, or ``parse`` raises
    ValueError (the wrong shape), the file is set aside and :class:`SetAside` raised with a
    one-line notice (or why it could not be moved).  An OSError reading the file, or the file
    gone before it could be moved, is the caller's."""
    text = path.read_bytes()
    try:
        return parse(json.loads(text.decode("utf-8")))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError; nesting too deep
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    try:
        aside = set_aside(path, "corrupt")
    except FileNotFoundError:
        raise  # another reader (the app and the history screen both list) set it aside first
    except OSError as exc:
        raise SetAside(f"{path} ignored ({reason}); it could not be set aside: {exc}") from None
    raise SetAside(f"{path} was set aside as {aside.name}: {reason}")


# ------------------------------------------------------------------ shape ---
def check_shape(value: Any, hint: Any, where: str = "") -> None:
    """Raise ValueError naming the first place where parsed JSON ``value`` does not fit ``hint``:
    a dataclass (an object; the fields present are checked, absent ones are the reader's to
    default), list[...], dict[str, ...], a union, a Literal, str, int, float, bool, None or Any."""
    if hint is Any:
        return
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return
        arms = [a for a in args if a is not type(None)]
        if len(arms) == 1:
            return check_shape(value, arms[0], where)
        for arm in arms:
            try:
                return check_shape(value, arm, where)
            except ValueError:
                pass
        _refuse(value, " or ".join(_name(a) for a in args), where)
    if origin is Literal:
        if value not in args:
            _refuse(value, " or ".join(map(repr, args)), where)
        return
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            _refuse(value, "an object", where)
        hints = _field_hints(hint)
        for f in dataclasses.fields(hint):
            if f.name in value:
                check_shape(value[f.name], hints[f.name], f"{where}.{f.name}" if where else f.name)
        return
    if origin is list:
        if not isinstance(value, list):
            _refuse(value, "a list", where)
        for i, item in enumerate(value):
            check_shape(item, args[0], f"{where}[{i}]")
        return
    if origin is dict:
        if not isinstance(value, dict):
            _refuse(value, "an object", where)
        for key, item in value.items():
            check_shape(item, args[1], f"{where}.{key}" if where else str(key))
        return
    if not _is_instance(value, hint):
        _refuse(value, _name(hint), where)


@functools.cache
def _field_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # evaluated once per class: a history holds thousands of nodes


def _is_instance(value: Any, hint: Any) -> bool:
    if hint is float:  # JSON writes 2.0 as 2
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, hint)


_JSON_NAMES = {type(None): "null", bool: "true or false", int: "a number", float: "a number", str: "text",
               list: "a list", dict: "an object"}


def _name(hint: Any) -> str:
    return _JSON_NAMES.get(hint) or getattr(hint, "__name__", None) or str(hint)


def _refuse(value: Any, expected: str, where: str) -> typing.NoReturn:
    got = _JSON_NAMES.get(type(value), type(value).__name__)
    raise ValueError(f"{where or 'top level'}: expected {expected}, got {got}")

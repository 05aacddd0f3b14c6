"""Render chats with a GGUF's own Jinja chat template, within a budget.

llama.cpp's built-in ``llama_chat_apply_template`` only knows templates it can
recognise by heuristics; rendering the template itself (as Hugging Face does)
works for any model.  Templates come from downloaded files, so rendering is
sandboxed (no attribute or file access) and bounded: a template that runs
longer than :data:`RENDER_SECONDS`, writes more than :data:`MAX_OUTPUT_CHARS`
or builds a value that large (``"x" * 10**9``, ``center(10**9)``) is stopped.
Such a template is then remembered as hostile and the caller's fallback
(llama.cpp's built-in rendering, see Engine.render_chat) is used instead, with
a :class:`ChatTemplateWarning`.
"""

from __future__ import annotations

import functools
import sys
import time
import warnings
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import SpecSearchError

# Used when a GGUF has no template: a plain, readable transcript.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

RENDER_SECONDS = 2.0
"""Longest a template may render (real templates take well under a millisecond)."""
MAX_OUTPUT_CHARS = 1 << 20
"""Largest rendered chat, and largest string or list a template may build."""


class ChatTemplateWarning(UserWarning):
    """A model's chat template was stopped (too slow or too large) and a fallback rendered the chat."""


class TemplateBudgetExceeded(Exception):
    """A template ran out of time or grew a value beyond the size budget."""


Fallback = Callable[[list[dict[str, str]], bool], str | None]
"""fallback(messages, add_generation_prompt): the chat rendered another way, or None."""


def _raise(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict)) and len(value) > MAX_OUTPUT_CHARS:
        raise TemplateBudgetExceeded(f"a value of {len(value)} items (limit {MAX_OUTPUT_CHARS})")
    return value


def _check_args(args: tuple, kwargs: dict) -> None:
    """Refuse a size argument beyond the budget before a C function allocates it
    (str.center(10**9), "x" * 10**9, indent(width=10**9))."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_OUTPUT_CHARS:
            raise TemplateBudgetExceeded(f"a size argument of {a} (limit {MAX_OUTPUT_CHARS})")


def _bounded(fn: Callable) -> Callable:
    @functools.wraps(fn)  # keeps jinja's pass_context / pass_environment marks
    def call(*args: Any, **kwargs: Any) -> Any:
        _check_args(args[1:] if getattr(fn, "jinja_pass_arg", None) else args, kwargs)
        return _check_size(fn(*args, **kwargs))

    return call


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with size checks on operators, calls and filters."""

    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded(f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator in ("*", "**"):
            _check_args((left, right), {})
        return _check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (jinja's signature)
        _check_args(args, kwargs)
        return _check_size(super().call(__context, __obj, *args, **kwargs))


@lru_cache(maxsize=16)
def _compile(source: str) -> jinja2.Template:
    env = BoundedSandbox(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


_hostile: set[str] = set()  # templates stopped once: later renders go straight to the fallback


def _render_bounded(template: jinja2.Template, **context: Any) -> str:
    """Render with the time and output budgets (a line tracer checks the clock inside
    the template's own loops, which produce no output while they spin)."""
    deadline = time.perf_counter() + RENDER_SECONDS

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if time.perf_counter() > deadline:
            raise TemplateBudgetExceeded(f"rendering took over {RENDER_SECONDS:g} s")
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        out, size = [], 0
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateBudgetExceeded(f"the chat grew beyond {MAX_OUTPUT_CHARS} characters")
            out.append(chunk)
        return "".join(out)
    finally:
        sys.settrace(previous)


def render_chat(
    template: str | None,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    model_name: str = "model",
    fallback: Fallback | None = None,
) -> str:
    source = template or FALLBACK_TEMPLATE
    if source not in _hostile:
        try:
            return _render_bounded(
                _compile(source), messages=messages, add_generation_prompt=add_generation_prompt,
                bos_token=bos_token, eos_token=eos_token,
            )
        except jinja2.exceptions.TemplateError as exc:
            raise SpecSearchError(f"the chat template of {model_name} failed: {exc}") from exc
        except (TemplateBudgetExceeded, MemoryError, RecursionError) as exc:
            _hostile.add(source)
            warnings.warn(f"the chat template of {model_name} was stopped ({exc or type(exc).__name__}); "
                          "using llama.cpp's built-in template instead", ChatTemplateWarning, stacklevel=2)
    rendered = fallback(messages, add_generation_prompt) if fallback is not None else None
    if rendered is None:  # llama.cpp does not recognise it either: a plain transcript
        rendered = _compile(FALLBACK_TEMPLATE).render(messages=messages, add_generation_prompt=add_generation_prompt)
    return rendered

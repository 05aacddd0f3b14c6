"""Render chats with a GGUF's own Jinja chat template.

llama.cpp's built-in ``llama_chat_apply_template`` only knows templates it can
recognise by heuristics; rendering the template itself (as Hugging Face does)
works for any model.  Sandboxed: templates come from downloaded files.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import SpecSearchError

# Used when a GGUF has no template: a plain, readable transcript.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _raise(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


@lru_cache(maxsize=16)
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


def render_chat(
    template: str | None,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    model_name: str = "model",
) -> str:
    try:
        return _compile(template or FALLBACK_TEMPLATE).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
        )
    except jinja2.exceptions.TemplateError as exc:
        raise SpecSearchError(f"the chat template of {model_name} failed: {exc}") from exc

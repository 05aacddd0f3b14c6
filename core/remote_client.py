"""HTTP/JSON client of an OpenAI-compatible completions server (llama-server,
llama_cpp.server, vLLM, Ollama, LM Studio): one POST per completion.

What the rest of specsearch relies on:

* every failure is a :class:`RemoteError` (a SpecSearchError) with a one-line
  message naming the role, the URL and the cause: connection refused, no answer
  within the timeout, an HTTP error status (with the start of the server's own
  message), or a response that is not the JSON expected;
* completions are idempotent (the server keeps no state between them), so
  connection failures, timeouts and 429/5xx answers are retried with exponential
  backoff before the error is raised;
* the API key is read from an environment variable named in the spec, at each
  request: it is never stored on an object, logged, put in an error or saved
  (``ServedModel.to_dict`` has the variable's name only);
* each answer's wall time and, where the server reports them (llama-server's
  ``timings``), its own prompt and generation times are returned with it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import requests

from .errors import SpecSearchError

DEFAULT_TIMEOUT = 120.0
DEFAULT_RETRIES = 2
DEFAULT_API_KEY_ENV = "SPECSEARCH_API_KEY"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_SECONDS = 0.25  # first retry after this, doubling


class RemoteError(SpecSearchError):
    """A served model could not be used (connection, timeout, HTTP status, response)."""


class RemoteConnectionError(RemoteError):
    """Nothing answers at the URL (connection refused, unknown host, reset)."""


class RemoteTimeoutError(RemoteError):
    """The server did not answer within the timeout."""


class RemoteHTTPError(RemoteError):
    """The server answered with an error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RemoteResponseError(RemoteError):
    """The server's answer is not the JSON an OpenAI-compatible completions server sends."""


def is_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


@dataclass(frozen=True)
class ServedModel:
    """A model served over an OpenAI-compatible completions endpoint.

    ``tokenizer`` is a GGUF file with the served model's vocabulary and chat
    template (only its vocabulary is loaded): specsearch tokenizes and renders
    prompts itself, so they are the same as with the local model."""

    base_url: str
    tokenizer: str | None = None
    model: str | None = None
    """The ``model`` field of each request (a server serving several needs it)."""
    api_key_env: str | None = DEFAULT_API_KEY_ENV
    """Name of the environment variable holding the API key (sent as a Bearer token when set)."""
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    parallel: int = 8
    """Most requests in flight at once (the children of a node go in parallel)."""
    n_ctx: int | None = None
    """The served context in tokens; None: the tokenizer GGUF's trained context, capped."""
    top_logprobs: int = 20
    """Top log-probs asked for at a PRM scoring position (OpenAI allows 5, vLLM 20 by default)."""

    def __post_init__(self) -> None:
        if not is_url(self.base_url):
            raise RemoteError(f"served model URL {self.base_url!r} must start with http:// or https://")
        if not self.timeout > 0:
            raise RemoteError(f"served model timeout must be > 0 seconds, got {self.timeout}")
        if self.retries < 0 or self.parallel < 1 or self.top_logprobs < 1:
            raise RemoteError("served model retries must be >= 0, parallel and top_logprobs >= 1")

    @property
    def path(self) -> str:
        """What names the model in results and messages: its URL (never a key)."""
        return self.base_url

    def with_tokenizer(self, tokenizer: str | None) -> "ServedModel":
        from dataclasses import replace

        return replace(self, tokenizer=tokenizer)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reply:
    """One answer: its JSON, the wall time of the request, the server's own timings (ms) if any."""

    data: dict[str, Any]
    seconds: float
    server_ms: dict[str, float]


class CompletionsClient:
    """POSTs to ``{base_url}/v1/...`` (a base URL already ending in /v1 is kept as is).
    Safe to use from several threads (one HTTP session per thread)."""

    def __init__(self, served: ServedModel, role: str = "model") -> None:
        self.served = served
        self.role = role
        base = served.base_url.rstrip("/")
        self.api_root = base if base.endswith("/v1") else base + "/v1"
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.served.api_key_env) if self.served.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def where(self) -> str:
        return f"the {self.role} model at {self.served.base_url}"

    def complete(self, payload: dict[str, Any], retry: bool = True) -> Reply:
        """POST /v1/completions (``model`` added when the spec names one); retried, see the module doc."""
        if self.served.model:
            payload = {"model": self.served.model, **payload}
        return self.post("completions", payload, retry)

    def post(self, endpoint: str, payload: dict[str, Any], retry: bool = True) -> Reply:
        url = f"{self.api_root}/{endpoint}"
        attempts = self.served.retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                return self._post_once(url, payload)
            except (RemoteConnectionError, RemoteTimeoutError) as e:
                failure: RemoteError = e
            except RemoteHTTPError as e:
                if e.status not in RETRY_STATUSES:
                    raise
                failure = e
            if attempt + 1 < attempts:
                time.sleep(BACKOFF_SECONDS * 2**attempt)
        if attempts > 1:
            failure.args = (f"{failure.args[0]} ({attempts} tries)",) + failure.args[1:]
        raise failure

    def _post_once(self, url: str, payload: dict[str, Any]) -> Reply:
        t0 = time.perf_counter()
        try:
            response = self._session().post(url, data=json.dumps(payload), headers=self._headers(),
                                            timeout=self.served.timeout)
        except requests.exceptions.Timeout:
            raise RemoteTimeoutError(f"{self.where()} did not answer within {self.served.timeout:g} s") from None
        except requests.exceptions.ConnectionError as e:
            raise RemoteConnectionError(f"cannot reach {self.where()}: {_reason(e)}") from None
        except requests.exceptions.RequestException as e:
            raise RemoteError(f"request to {self.where()} failed: {_reason(e)}") from None
        seconds = time.perf_counter() - t0
        if response.status_code >= 400:
            raise RemoteHTTPError(f"{self.where()} answered HTTP {response.status_code}: "
                                  f"{_short(response.text) or response.reason}", response.status_code)
        try:
            data = response.json()
        except ValueError:
            raise RemoteResponseError(f"{self.where()} sent a response that is not JSON: "
                                      f"{_short(response.text)!r}") from None
        if not isinstance(data, dict):
            raise RemoteResponseError(f"{self.where()} sent JSON that is not an object: {_short(response.text)!r}")
        return Reply(data, seconds, _server_ms(data))


def _server_ms(data: dict[str, Any]) -> dict[str, float]:
    """llama-server's ``timings``: prompt and generation milliseconds (empty where not reported)."""
    timings = data.get("timings")
    if not isinstance(timings, dict):
        return {}
    out = {}
    for key, name in (("prompt_ms", "prompt_ms"), ("predicted_ms", "generation_ms")):
        value = timings.get(key)
        if isinstance(value, (int, float)):
            out[name] = float(value)
    return out


def _short(text: str, limit: int = 200) -> str:
    """The start of a server's message, on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _reason(error: Exception) -> str:
    """The innermost cause of a requests error (e.g. "Connection refused"), on one line."""
    cause: BaseException | None = error
    while cause is not None:
        inner = cause.__cause__ or cause.__context__ or (cause.args[0] if cause.args and isinstance(
            cause.args[0], BaseException) else None)
        if inner is None or inner is cause:
            break
        cause = inner
    text = str(cause) if cause is not None else str(error)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return _short(text, 160)

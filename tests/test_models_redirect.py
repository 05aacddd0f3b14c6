"""The Hugging Face token goes to the endpoint only, never to the host a download is redirected to."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from specsearch.models import pull
from specsearch.models.download import headers_for
from hub_fixtures import cdn, hub  # noqa: F401  (fixtures)
from tiny_models import write_tiny_model

TOKEN = "hf_specsearchTestToken0123456789"


def authorization(headers: dict[str, str]) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == "authorization"), None)


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return TOKEN


def test_a_redirect_to_another_host_gets_no_token(hub, cdn, token, tmp_path):
    data = write_tiny_model(tmp_path / "m.gguf", 5).read_bytes()
    hub.add("org/private", "model.gguf", data)
    cdn.add("org/private", "model.gguf", data)
    hub.redirect_to = cdn
    entry = pull("org/private", "model.gguf")
    assert Path(entry.path).read_bytes() == data and entry.sha256 == hashlib.sha256(data).hexdigest()
    hub_heads = [h for m, _, h in hub.headers_seen if m == "HEAD"]
    assert hub_heads and authorization(hub_heads[0]) == f"Bearer {token}"  # the endpoint does get it
    cdn_gets = [h for m, _, h in cdn.headers_seen if m == "GET"]
    assert cdn_gets, "the file must come from the redirect host"
    assert all(authorization(h) is None for h in cdn_gets)
    assert not [h for _, _, h in cdn.headers_seen if token in " ".join(h.values())]


def test_the_endpoint_itself_keeps_the_token(hub, token, tmp_path):
    data = write_tiny_model(tmp_path / "m.gguf", 5).read_bytes()
    hub.add("org/private", "model.gguf", data)
    pull("org/private", "model.gguf")
    gets = [h for m, _, h in hub.headers_seen if m == "GET"]
    assert gets and all(authorization(h) == f"Bearer {token}" for h in gets)


@pytest.mark.parametrize("location, kept", [
    ("https://hub.example/org/r/resolve/main/f.gguf", True),
    ("https://HUB.example:443/other/path", True),
    ("http://hub.example/org/r/resolve/main/f.gguf", False),  # another scheme
    ("https://hub.example:8443/f.gguf", False),  # another port
    ("https://cdn.example/f.gguf", False),
    ("https://hub.example.evil.test/f.gguf", False),
])
def test_origin_rule(token, location, kept):
    headers = headers_for("https://hub.example/org/r/resolve/main/f.gguf", location)
    assert (authorization(headers) is not None) == kept

"""A local stand-in for the Hugging Face Hub (model and dataset files), for
download tests: ``FakeHub`` and the ``hub`` fixture (HF_ENDPOINT points at it);
``cdn``, a second server on another port that ``hub.redirect_to`` can send
downloads to, the way the Hub sends LFS files to its CDN."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

COMMIT = "a" * 40


class FakeHub:
    """Serves files the way the Hub's resolve endpoint does: HEAD metadata
    (X-Repo-Commit, X-Linked-Etag = SHA-256, X-Linked-Size) and GET with Range."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.headers_seen: list[tuple[str, str, dict[str, str]]] = []  # (method, path, request headers)
        self.break_next_get = False  # send half the body, then fail the connection
        self.redirect_to: FakeHub | None = None  # answer file requests with a 302 to that server
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _lookup(self):
                parts = self.path.split("?")[0].strip("/").split("/")
                # [datasets/]org/repo/resolve/revision/path/to/file
                prefix = ""
                if parts and parts[0] in ("datasets", "spaces"):
                    prefix, parts = parts[0] + "/", parts[1:]
                if len(parts) < 5 or parts[2] != "resolve":
                    return None
                return prefix + "/".join(parts[:2] + parts[4:])

            def _headers(self, key: str, data: bytes, status: int, start: int = 0) -> None:
                self.send_response(status)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("X-Linked-Etag", f'"{hub.etags[key]}"')
                self.send_header("ETag", f'"{hub.etags[key]}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()

            def _redirected(self, key: str | None) -> bool:
                """Like the Hub for an LFS file: a 302 elsewhere that carries the file's metadata."""
                if hub.redirect_to is None or key not in hub.files:
                    return False
                self.send_response(302)
                self.send_header("Location", hub.redirect_to.url + self.path)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("X-Linked-Etag", f'"{hub.etags[key]}"')
                self.send_header("X-Linked-Size", str(len(hub.files[key])))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True

            def do_HEAD(self) -> None:
                key = self._lookup()
                hub.requests.append(("HEAD", self.path, None))
                hub.headers_seen.append(("HEAD", self.path, dict(self.headers)))
                if self._redirected(key):
                    return
                if key not in hub.files:
                    self.send_error(404)
                    return
                self._headers(key, hub.files[key], 200)

            def do_GET(self) -> None:
                key = self._lookup()
                rng = self.headers.get("Range")
                hub.requests.append(("GET", self.path, rng))
                hub.headers_seen.append(("GET", self.path, dict(self.headers)))
                if self._redirected(key):
                    return
                if key not in hub.files:
                    self.send_error(404)
                    return
                data = hub.files[key]
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                self._headers(key, data, 206 if start else 200, start)
                body = data[start:]
                if hub.break_next_get:
                    hub.break_next_get = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    hub.fail_gets = 1
                    return
                self.wfile.write(body)

        self.fail_gets = 0
        original_get = Handler.do_GET

        def do_get(handler):  # after a break, refuse a few requests: the pull fails and must resume later
            if hub.fail_gets:
                hub.fail_gets -= 1
                hub.requests.append(("GET-refused", handler.path, handler.headers.get("Range")))
                handler.send_error(503)
                return
            original_get(handler)

        Handler.do_GET = do_get
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo: str, filename: str, data: bytes, etag: str | None = None,
            repo_type: str = "model") -> None:
        key = ("" if repo_type == "model" else f"{repo_type}s/") + f"{repo}/{filename}"
        self.files[key] = data
        self.etags[key] = etag or hashlib.sha256(data).hexdigest()


@pytest.fixture
def cdn():
    """A second stand-in server (another origin) that records the headers it is sent."""
    server = FakeHub()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def hub(monkeypatch):
    server = FakeHub()
    server.thread.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    # huggingface_hub writes in 10 MB chunks; the tiny files need small ones for a
    # broken transfer to leave a partial file behind.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    yield server
    server.server.shutdown()
    server.server.server_close()

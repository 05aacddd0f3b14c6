"""llama_cpp.server (llama-cpp-python's OpenAI-compatible server) on 127.0.0.1 in a
subprocess, serving a GGUF, for tests of remote models."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedGGUF:
    """``python -m llama_cpp.server`` on ``model``; f32 KV cache and no flash attention,
    like a local Engine loaded batch-invariant, so both compute the same logits."""

    def __init__(self, model: Path, n_ctx: int = 2048, log: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", "1", "--n_threads_batch", "1",
             "--type_k", "0", "--type_v", "0", "--flash_attn", "false", "--n_gpu_layers", "0"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}")
            try:
                if requests.get(self.url + "/v1/models", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("llama_cpp.server did not start within 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._log is not subprocess.DEVNULL:
            self._log.close()

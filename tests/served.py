"""llama_cpp.server (llama-cpp-python's OpenAI-compatible server) on 127.0.0.1 in a
subprocess, serving a GGUF, for tests of remote models.

Run as a script it is llama_cpp.server itself, with llama.cpp's extra CPU buffer
types off where specsearch turns them off (core.llama_adapter: their AMX type
crashes the first decode of a quantized model on AMX CPUs, llama.cpp issue 20824):

    python tests/served.py --model L.gguf --host 127.0.0.1 --port 8080 --n_threads 1
"""

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
            [sys.executable, __file__, "--model", str(model), "--host", "127.0.0.1",
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


def serve() -> int:
    """llama_cpp.server's main, loading models as specsearch would on this CPU."""
    import llama_cpp.llama_cpp as llama_cpp_lib
    from llama_cpp.server.__main__ import main

    from specsearch.core.llama_adapter import _extra_buffers_allowed

    if not _extra_buffers_allowed():
        default_params = llama_cpp_lib.llama_model_default_params

        def params():
            p = default_params()
            p.use_extra_bufts = False
            return p

        llama_cpp_lib.llama_model_default_params = params
    return main() or 0


if __name__ == "__main__":
    sys.exit(serve())

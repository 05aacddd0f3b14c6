"""Served models by name (models/served.py, `specsearch models served …`)."""

from __future__ import annotations

import json

import pytest

from specsearch.cli.main import EXIT_ERROR, main
from specsearch.core.remote_client import ServedModel
from specsearch.models.resolve import resolve_models
from specsearch.models.served import load_served, served_path


def test_add_list_resolve_remove(tiny, capsys, monkeypatch) -> None:
    monkeypatch.setenv("GPU_BOX_KEY", "sekret-9")
    assert main(["models", "served", "add", "gpu", "http://gpu-box:8080", "--tokenizer", str(tiny["target"]),
                 "--model", "qwen-7b", "--api-key-env", "GPU_BOX_KEY", "--timeout", "30"]) == 0
    want = ServedModel("http://gpu-box:8080", tokenizer=str(tiny["target"].resolve()), model="qwen-7b",
                       api_key_env="GPU_BOX_KEY", timeout=30.0)
    assert load_served() == {"gpu": want}
    assert "sekret" not in served_path().read_text()

    resolved = resolve_models({"small": str(tiny["draft"]), "large": "gpu", "prm": None}, entries=[], defaults={})
    assert resolved.specs["large"] == want and resolved.sources["large"] == "served model: gpu"
    assert resolved.problems == []

    capsys.readouterr()
    assert main(["models", "served", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gpu"]["base_url"] == "http://gpu-box:8080"
    assert main(["models", "served", "rm", "gpu"]) == 0
    assert load_served() == {}
    assert main(["models", "served", "rm", "gpu"]) == EXIT_ERROR
    assert capsys.readouterr().err.strip() == "specsearch: error: no served model is called 'gpu'"


@pytest.mark.parametrize("argv, message", [
    (["gpu", "gpu-box:8080"], "must start with http:// or https://"),
    (["a/b", "http://x"], "use a short name without '/'"),
    (["gpu", "http://x", "--tokenizer", "nope.gguf"], "nope.gguf' is not a file"),
])
def test_bad_entries_are_refused_in_one_line(argv, message, capsys) -> None:
    assert main(["models", "served", "add", *argv]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert load_served() == {}

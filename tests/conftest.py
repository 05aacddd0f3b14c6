"""Shared fixtures: tiny GGUF models written by the suite, user dirs in tmp."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tiny_models import write_tiny_model


@pytest.fixture(autouse=True)
def _user_dirs_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real user's data, config or models."""
    monkeypatch.setenv("SPECSEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPECSEARCH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("SPECSEARCH_MODELS_DIR", raising=False)
    monkeypatch.delenv("SPECSEARCH_HISTORY_DIR", raising=False)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """target (seed 1), draft (seed 2, same vocabulary), twin (seed 1 again:
    identical to target), alien (different vocabulary)."""
    d = tmp_path_factory.mktemp("tiny-models")
    return {
        "target": write_tiny_model(d / "target.gguf", 1),
        "draft": write_tiny_model(d / "draft.gguf", 2),
        "twin": write_tiny_model(d / "twin.gguf", 1),
        "alien": write_tiny_model(d / "alien.gguf", 3, vocab_variant=1),
    }


def real_models_dir() -> Path | None:
    value = os.environ.get("SPECSEARCH_REAL_MODELS")
    return Path(value) if value else None

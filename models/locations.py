"""Where specsearch keeps user data, on top of platformdirs.

``SPECSEARCH_DATA_DIR`` and ``SPECSEARCH_CONFIG_DIR`` override the platform
defaults (tests point them at tmp paths); ``SPECSEARCH_MODELS_DIR`` overrides
where model files are stored (default: ``<data dir>/models``).
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_config_path, user_data_path

APP_NAME = "specsearch"


def _dir(env: str, default: Path) -> Path:
    path = Path(os.environ[env]).expanduser() if os.environ.get(env) else default
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """History, the model registry."""
    return _dir("SPECSEARCH_DATA_DIR", user_data_path(APP_NAME))


def config_dir() -> Path:
    """Settings."""
    return _dir("SPECSEARCH_CONFIG_DIR", user_config_path(APP_NAME))


def models_dir() -> Path:
    """Downloaded, assembled and imported GGUF files."""
    return _dir("SPECSEARCH_MODELS_DIR", data_dir() / "models")


def history_dir() -> Path:
    return _dir("SPECSEARCH_HISTORY_DIR", data_dir() / "history")


def auto_memory_file() -> Path:
    """What method auto learned about drafting on each set of models, kept between runs
    (core.auto_memory_store)."""
    return data_dir() / "auto_memory.json"

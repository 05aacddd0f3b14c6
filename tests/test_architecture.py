"""Layering rules, checked with import-linter (contract in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_models_and_cli_never_import_the_ui():
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken" in result.stdout


def test_packages_install_under_one_namespace():
    import importlib.util

    import specsearch.core

    assert importlib.util.find_spec("specsearch.app") is not None
    for bare in ("core", "app", "models", "cli"):
        spec = importlib.util.find_spec(bare)
        assert spec is None or "site-packages" not in (spec.origin or ""), f"bare module {bare!r} installed"
    # importing the core and the model manager must not pull in the UI toolkit
    out = subprocess.run([sys.executable, "-c", "import sys, specsearch.core, specsearch.models; "
                          "print('textual' in sys.modules)"], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr

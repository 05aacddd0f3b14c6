"""Layering rules: imports checked with import-linter (contract in pyproject.toml);
who may touch whose private members checked with an ast scan."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


# --------------------------------------------- private members stay private ---
def private_uses(source: str) -> list[str]:
    """``x._name`` on anything but ``self``/``cls``, and ``from m import _name``:
    one object reaching into another's internals."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if _is_private(a.name)]
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# What core/speculative.py did before it had the engine's KV-lease API.
ENGINE_PRIVATES_SAMPLE = '''
from .engine import Engine, _as_prompt_list
class SpeculativeDecoder:
    def generate(self):
        with self.target._lock, self.draft._lock:
            self.target._release()
class _SpecRun:
    def run(self):
        slots = [c for s in self.t.prefill(self.prompts, self.stats) for c in self.t._fork(s, self.n)]
        held = len(self.d.slots.tokens[self.d_slots[0]])
        self.t._truncate(self.t_slots[0], 3)
'''


def test_the_private_member_scan_finds_engine_internals():
    found = private_uses(ENGINE_PRIVATES_SAMPLE)
    for name in ("_as_prompt_list", "self.target._lock", "self.draft._lock", "self.target._release",
                 "self.t._fork", "self.t._truncate"):
        assert any(name in f for f in found), name
    assert not private_uses("class A:\n    def f(self):\n        return self._x + len(self.lease)\n")


@pytest.mark.parametrize("module", ["core/speculative.py", "core/engine.py"])
def test_the_speculative_decoder_and_engine_use_only_public_members_of_other_objects(module):
    """The speculative decoder works through the engine's public KV-lease API;
    the engine works through the slot table's methods (tests/test_kv_slots.py)."""
    assert private_uses((ROOT / module).read_text(encoding="utf-8")) == []

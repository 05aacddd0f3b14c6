"""Packaging: every extra pyproject.toml asks of a dependency is one the installed package provides.

pip 23 compares extra names as written, so a misspelt or renamed extra
(``math-verify[antlr4_13_2]`` when the package says ``antlr4-13-2``) warns on
every install and silently installs nothing extra.
"""

from __future__ import annotations

import importlib.metadata as metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_every_requested_extra_is_provided():
    deps = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    missing = []
    for req in map(Requirement, deps):
        if req.extras:
            provided = set(metadata.metadata(req.name).get_all("Provides-Extra") or [])
            missing += [f"{req.name}[{extra}]" for extra in sorted(req.extras - provided)]
    assert missing == []

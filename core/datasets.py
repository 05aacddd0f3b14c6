"""Problem sets: the packaged GSM8K / MATH-500 excerpts or any JSONL file.

A dataset file is JSON Lines, one problem per line, with at least ``question``
and ``answer`` (a bare final answer such as ``"18"`` or ``"\\frac{1}{2}"``);
``id`` (default: the 0-based line index) and ``solution`` (a worked reference
solution) are optional, any other fields are kept in :attr:`Problem.meta`.
Blank lines are skipped.  See ``data/LICENSE-DATA.md`` for the packaged files'
licences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from specsearch.core.errors import SpecSearchError
from specsearch.core.text import jsonl_lines

__all__ = ["DATASETS", "DatasetError", "Problem", "dataset_names", "load_dataset", "parse_jsonl"]

# Packaged datasets: name -> file in specsearch/core/data/.
DATASETS: dict[str, str] = {
    "gsm8k": "gsm8k_dev.jsonl",
    "math500": "math500_dev.jsonl",
}


class DatasetError(SpecSearchError):
    """A dataset could not be found or read (the message names the file and line)."""


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str
    solution: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "solution": self.solution,
            **self.meta,
        }


def dataset_names() -> list[str]:
    """Names that :func:`load_dataset` resolves to packaged files."""
    return sorted(DATASETS)


def _read_packaged(name: str) -> str:
    ref = resources.files("specsearch.core").joinpath("data").joinpath(DATASETS[name])
    try:
        return ref.read_text(encoding="utf-8")
    except FileNotFoundError as exc:  # a broken installation
        raise DatasetError(f"packaged dataset {name!r} is missing from the installation ({ref})") from exc


def _read_path(name_or_path: str | Path) -> tuple[str, str]:
    path = Path(name_or_path).expanduser()
    if not path.exists():
        names = ", ".join(dataset_names())
        raise DatasetError(
            f"dataset {str(name_or_path)!r} not found: not a packaged dataset ({names}) "
            f"and no such file"
        )
    if not path.is_file():
        raise DatasetError(f"dataset path {str(path)!r} is not a file")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):  # custom files may store answers as numbers
        return str(value)
    return None


def parse_jsonl(text: str, source: str = "<string>") -> list[Problem]:
    """Problems from JSONL text; errors name ``source`` and the 1-based line number."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for lineno, line in jsonl_lines(text):
        where = f"{source}, line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(obj, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        missing = [k for k in ("question", "answer") if k not in obj]
        if missing:
            raise DatasetError(f"{where}: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        question = obj["question"]
        if not isinstance(question, str) or not question.strip():
            raise DatasetError(f"{where}: 'question' must be a non-empty string")
        answer = _as_text(obj["answer"])
        if answer is None or not answer.strip():
            raise DatasetError(f"{where}: 'answer' must be a non-empty string or number")
        solution = obj.get("solution", "")
        if solution is None:
            solution = ""
        if not isinstance(solution, str):
            raise DatasetError(f"{where}: 'solution' must be a string")
        raw_id = obj.get("id", lineno - 1)
        pid = _as_text(raw_id)
        if pid is None or not pid:
            raise DatasetError(f"{where}: 'id' must be a non-empty string or number")
        if pid in seen:
            raise DatasetError(f"{where}: duplicate id {pid!r} (first on line {seen[pid]})")
        seen[pid] = lineno
        meta = {k: v for k, v in obj.items() if k not in ("id", "question", "answer", "solution")}
        problems.append(Problem(id=pid, question=question, answer=answer.strip(), solution=solution, meta=meta))
    return problems


def load_dataset(name_or_path: str | Path, n: int | None = None) -> list[Problem]:
    """The problems of a packaged dataset (``"gsm8k"``, ``"math500"``) or a JSONL file.

    ``n`` keeps the first ``n`` problems (file order).  Raises
    :class:`DatasetError` for a missing file, a bad line (naming its number),
    missing fields, duplicate ids or an empty file.
    """
    if n is not None and n < 0:
        raise DatasetError(f"the number of problems must not be negative (got {n})")
    key = str(name_or_path)
    if not isinstance(name_or_path, Path) and key.lower() in DATASETS:
        name = key.lower()
        text, source = _read_packaged(name), name
    else:
        text, source = _read_path(name_or_path)
    problems = parse_jsonl(text, source)
    if not problems:
        raise DatasetError(f"{source}: contains no problems")
    return problems if n is None else problems[:n]

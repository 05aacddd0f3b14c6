"""Packaged and custom problem sets (specsearch.core.datasets)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from specsearch.core.datasets import DatasetError, Problem, dataset_names, load_dataset
from specsearch.core.errors import SpecSearchError


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class TestPackaged:
    def test_names(self) -> None:
        assert dataset_names() == ["gsm8k", "math500"]

    def test_gsm8k(self) -> None:
        problems = load_dataset("gsm8k")
        assert len(problems) == 300
        first = problems[0]
        assert isinstance(first, Problem)
        assert first.id == "gsm8k-test-0"
        assert first.answer == "18"
        assert "Janet" in first.question
        assert first.solution
        assert len({p.id for p in problems}) == 300

    def test_math500(self) -> None:
        problems = load_dataset("math500")
        assert len(problems) == 250
        first = problems[0]
        assert first.id == "test/precalculus/807.json"
        assert first.answer == r"\left( 3, \frac{\pi}{2} \right)"
        assert first.meta == {"subject": "Precalculus", "level": 2}
        assert all(p.question and p.answer and p.solution for p in problems)

    def test_name_is_case_insensitive(self) -> None:
        assert load_dataset("GSM8K", n=1)[0].id == "gsm8k-test-0"

    def test_package_data_and_licence_present(self) -> None:
        data = resources.files("specsearch.core").joinpath("data")
        names = {entry.name for entry in data.iterdir()}
        assert {"gsm8k_dev.jsonl", "math500_dev.jsonl", "LICENSE-DATA.md"} <= names
        licence = data.joinpath("LICENSE-DATA.md").read_text(encoding="utf-8")
        for needle in (
            "Copyright (c) 2021 OpenAI",
            "Copyright (c) 2021 Dan Hendrycks",
            "prm800k",
            "Permission is hereby granted, free of charge",
        ):
            assert needle in licence


class TestLimit:
    def test_n(self) -> None:
        full = load_dataset("math500")
        some = load_dataset("math500", n=5)
        assert some == full[:5]

    def test_n_zero_and_large(self) -> None:
        assert load_dataset("gsm8k", n=0) == []
        assert len(load_dataset("gsm8k", n=10_000)) == 300

    def test_negative_n(self) -> None:
        with pytest.raises(DatasetError, match="negative"):
            load_dataset("gsm8k", n=-1)


class TestCustomJsonl:
    def test_minimal_fields_and_default_ids(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "mine.jsonl",
            [
                json.dumps({"question": "1+1?", "answer": "2"}),
                "",
                json.dumps({"question": "2+2?", "answer": 4, "topic": "sums"}),
            ],
        )
        problems = load_dataset(str(path))
        assert [p.id for p in problems] == ["0", "2"]  # 0-based line index
        assert problems[0] == Problem(id="0", question="1+1?", answer="2", solution="")
        assert problems[1].answer == "4"  # numbers become strings
        assert problems[1].meta == {"topic": "sums"}

    def test_explicit_ids_and_solution(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "mine.jsonl",
            [json.dumps({"id": "a", "question": "q", "answer": "1", "solution": r"\boxed{1}"})],
        )
        (p,) = load_dataset(path)  # a Path works too
        assert (p.id, p.solution) == ("a", r"\boxed{1}")

    def test_unicode_line_breaks_inside_strings(self, tmp_path: Path) -> None:
        # GSM8K's training file holds a U+2028 inside a solution; only "\n" (and "\r\n") ends a line.
        texts = ["a\u2028b", "c\u2029d", "e\x85f", "g\x0bh"]
        lines = [json.dumps({"question": t, "answer": "1"}, ensure_ascii=False) for t in texts]
        path = tmp_path / "m.jsonl"
        path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
        assert [p.question for p in load_dataset(path)] == texts
        assert [p.id for p in load_dataset(path)] == ["0", "1", "2", "3"]

    def test_n_on_custom_file(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "m.jsonl", [json.dumps({"question": f"q{i}", "answer": str(i)}) for i in range(5)])
        assert [p.answer for p in load_dataset(str(path), n=2)] == ["0", "1"]


class TestErrors:
    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetError, match="not found") as info:
            load_dataset(str(tmp_path / "nope.jsonl"))
        assert "gsm8k" in str(info.value)  # tells the user the packaged names
        assert isinstance(info.value, SpecSearchError)

    def test_unknown_name(self) -> None:
        with pytest.raises(DatasetError, match="not found"):
            load_dataset("aime2024")

    def test_directory(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetError, match="not a file"):
            load_dataset(str(tmp_path))

    def test_bad_json_names_line(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "bad.jsonl",
            [json.dumps({"question": "q", "answer": "1"}), "", '{"question": "q2", "answer": '],
        )
        with pytest.raises(DatasetError, match=r"line 3: invalid JSON"):
            load_dataset(str(path))

    def test_missing_fields_name_line(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "bad.jsonl",
            [json.dumps({"question": "q", "answer": "1"}), json.dumps({"id": "x", "question": "q2"})],
        )
        with pytest.raises(DatasetError, match=r"line 2: missing field answer"):
            load_dataset(str(path))
        _write(path, [json.dumps({"solution": "s"})])
        with pytest.raises(DatasetError, match=r"line 1: missing fields question, answer"):
            load_dataset(str(path))

    def test_not_an_object(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "bad.jsonl", ["[1, 2]"])
        with pytest.raises(DatasetError, match="line 1: expected a JSON object"):
            load_dataset(str(path))

    def test_empty_values(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "bad.jsonl", [json.dumps({"question": "q", "answer": ""})])
        with pytest.raises(DatasetError, match="line 1: 'answer'"):
            load_dataset(str(path))

    def test_duplicate_ids(self, tmp_path: Path) -> None:
        row = json.dumps({"id": "a", "question": "q", "answer": "1"})
        path = _write(tmp_path / "dup.jsonl", [row, row])
        with pytest.raises(DatasetError, match="line 2: duplicate id 'a' \\(first on line 1\\)"):
            load_dataset(str(path))

    def test_empty_file(self, tmp_path: Path) -> None:
        path = tmp_path / "empty.jsonl"
        path.write_text("\n\n", encoding="utf-8")
        with pytest.raises(DatasetError, match="no problems"):
            load_dataset(str(path))

    def test_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "latin1.jsonl"
        path.write_bytes(b'{"question": "caf\xe9", "answer": "1"}\n')
        with pytest.raises(DatasetError, match="not UTF-8"):
            load_dataset(str(path))

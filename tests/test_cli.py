"""The `specsearch` command line, run in-process on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specsearch.cli.main import main
from specsearch.core.api import Solver
from specsearch.core.bench import run_benchmark
from specsearch.core.config import SearchConfig
from specsearch.core.datasets import load_dataset


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class TestInfo:
    def test_json(self, capsys, tiny):
        code, out, _ = run_cli(capsys, "info", str(tiny["target"]), "--json")
        data = json.loads(out)
        assert code == 0
        assert data["architecture"] == "llama"
        assert data["vocab_size"] == 300
        assert data["has_chat_template"] is True
        assert data["context_length"] == 2048
        assert data["quantization"] == "ALL_F32"
        assert data["parameter_count"] > 100_000

    def test_text_and_errors(self, capsys, tiny, tmp_path):
        code, out, _ = run_cli(capsys, "info", str(tiny["target"]))
        assert code == 0 and "architecture" in out and "llama" in out
        bad = tmp_path / "x.gguf"
        bad.write_text("hello")
        code, _, err = run_cli(capsys, "info", str(bad))
        assert code == 2 and "not a GGUF file" in err


class TestGenerate:
    def test_json_fields(self, capsys, tiny):
        code, out, _ = run_cli(capsys, "generate", "--model", str(tiny["target"]), "--prompt", "the cat",
                               "--n", "3", "--max-tokens", "10", "--temperature", "0.8", "--json")
        data = json.loads(out)
        assert code == 0
        assert len(data["texts"]) == len(data["tokens"]) == len(data["finish_reasons"]) == 3
        assert {"wall_seconds", "tokens_per_second"} <= set(data["stats"])

    def test_draft_gives_the_same_greedy_text_and_reports_acceptance(self, capsys, tiny):
        args = ["generate", "--model", str(tiny["target"]), "--prompt", "hello there", "--chat",
                "--max-tokens", "24", "--json"]
        _, plain, _ = run_cli(capsys, *args)
        _, spec, _ = run_cli(capsys, *args, "--draft", str(tiny["twin"]), "--fixed-k")
        plain, spec = json.loads(plain), json.loads(spec)
        assert spec["texts"] == plain["texts"]
        assert spec["stats"]["acceptance_rate"] == 1.0
        assert {"drafted", "accepted", "target_passes"} <= set(spec["stats"])

    def test_incompatible_draft_is_one_line_error(self, capsys, tiny):
        code, _, err = run_cli(capsys, "generate", "--model", str(tiny["target"]), "--draft", str(tiny["alien"]),
                               "--prompt", "x")
        assert code == 2
        assert "different vocabularies" in err and len(err.strip().splitlines()) == 1


class TestSolve:
    def test_json_stream(self, capsys, tiny):
        code, out, _ = run_cli(capsys, "solve", "What is 3 + 4?", "--small", str(tiny["draft"]),
                               "--large", str(tiny["target"]), "--depth", "2", "--step-tokens", "8",
                               "--children", "2", "--json")
        events = [json.loads(line) for line in out.splitlines()]
        assert code == 0
        assert events[0]["event"] == "SearchStarted" and events[-1]["event"] == "SearchFinished"
        assert "stats" in events[-1]["result"] and "nodes" in events[-1]["result"]

    def test_text_stream(self, capsys, tiny):
        code, out, _ = run_cli(capsys, "solve", "What is 3 + 4?", "--small", str(tiny["draft"]),
                               "--large", str(tiny["target"]), "--depth", "2", "--step-tokens", "8", "--children", "2")
        assert code == 0
        assert "step 1" in out and "answer:" in out and "time by phase" in out

    def test_missing_models(self, capsys):
        code, _, err = run_cli(capsys, "solve", "hi")
        assert code == 2 and "no models" in err

    def test_model_manager_names_and_defaults(self, capsys, tiny):
        from specsearch.models import Registry

        reg = Registry.load()
        reg.import_file(tiny["target"], name="big", role="large", link=True)
        reg.set_default("large", "big")
        reg.import_file(tiny["draft"], name="little", role="small", link=True)
        code, out, _ = run_cli(capsys, "solve", "What is 3 + 4?", "--small", "little", "--depth", "1",
                               "--step-tokens", "4", "--children", "2", "--json")
        finished = json.loads(out.splitlines()[-1])
        assert code == 0 and finished["event"] == "SearchFinished"
        code, _, err = run_cli(capsys, "solve", "hi", "--small", "nope")
        assert code == 2 and "'nope' is neither a file nor a model-manager name" in err


class TestBenchResume:
    def test_resume_does_not_redo_finished_problems(self, tiny, tmp_path):
        data = tmp_path / "probs.jsonl"
        data.write_text("\n".join(json.dumps({"id": f"p{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)})
                                  for i in range(3)) + "\n")
        problems = load_dataset(str(data))
        calls: list[tuple[str, str]] = []
        cfg = dict(max_depth=2, max_step_tokens=8, children=2, beam_width=1)
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"]) as solver:
            def solve(p, method):
                calls.append((p.id, method))
                return solver.solve(p.question, SearchConfig(method=method, **cfg))

            first = run_benchmark(problems[:2], ["ar", "specsearch"], solve, tmp_path / "out")
            assert len(calls) == 4
            second = run_benchmark(problems, ["ar", "specsearch"], solve, tmp_path / "out")
        assert calls[4:] == [("p2", "ar"), ("p2", "specsearch")]
        assert second.methods["ar"].n == 3 and first.methods["ar"].n == 2
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert {"accuracy", "mean_latency_s", "speedup_vs_ar", "thought_acceptance_rate", "n"} <= set(summary["specsearch"])
        assert (tmp_path / "out" / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_bench_command(self, capsys, tiny, tmp_path):
        data = tmp_path / "probs.jsonl"
        data.write_text(json.dumps({"question": "What is 1 + 1?", "answer": "2"}) + "\n")
        code, out, _ = run_cli(capsys, "bench", "--dataset", str(data), "--n", "1", "--methods", "ar,small",
                               "--small", str(tiny["draft"]), "--large", str(tiny["target"]),
                               "--depth", "1", "--step-tokens", "6", "--children", "2", "--out", str(tmp_path / "b"))
        assert code == 0
        assert "ar" in out and "small" in out
        assert Path(tmp_path / "b" / "results.csv").exists()

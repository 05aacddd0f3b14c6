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


class TestBenchSweep:
    def test_variants_apply_their_option_and_draw_the_curve(self, capsys, tiny, tmp_path):
        data = tmp_path / "probs.jsonl"
        data.write_text("\n".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)})
                                   for i in range(2)) + "\n")
        code, out, err = run_cli(capsys, "bench", "--dataset", str(data), "--n", "2", "--methods",
                                 "ar,specsearch@threshold_margin=-1", "--sweep", "threshold_margin=1",
                                 "--small", str(tiny["draft"]), "--large", str(tiny["target"]), "--json",
                                 "--depth", "2", "--step-tokens", "6", "--children", "2", "--out", str(tmp_path / "b"))
        assert code == 0, err
        summary = json.loads(out)
        assert list(summary) == ["ar", "specsearch@threshold_margin=-1.0", "specsearch@threshold_margin=1.0"]
        # scores lie in [0, 1]: a bar one below beta accepts every draft, one above rejects every draft
        assert summary["specsearch@threshold_margin=-1.0"]["thought_acceptance_rate"] == 1.0
        assert summary["specsearch@threshold_margin=1.0"]["thought_acceptance_rate"] == 0.0
        assert (tmp_path / "b" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_bad_variants_are_one_line_errors(self, capsys, tiny, tmp_path):
        for methods, why in (("specsearch@nonsense=1", "'nonsense' is not a search option"),
                             ("nomethod@threshold_margin=1", "unknown method(s) nomethod"),
                             ("specsearch@children=x", "children takes a number, not 'x'")):
            with pytest.raises(SystemExit) as exit_:
                main(["bench", "--methods", methods, "--out", str(tmp_path / "b")])
            err = capsys.readouterr().err
            assert exit_.value.code == 2 and "Traceback" not in err and why in err.strip().splitlines()[-1]
        assert not (tmp_path / "b").exists()


# ------------------------------------------------------- reward-model options ---
TINY_SEARCH = ("--depth", "1", "--step-tokens", "4", "--children", "2")


def solve_json(capsys, tiny, *extra: str) -> list[dict]:
    code, out, err = run_cli(capsys, "solve", "What is 3 + 4?", "--small", str(tiny["draft"]),
                             "--large", str(tiny["target"]), *TINY_SEARCH, "--json", *extra)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def write_head(backbone: Path, out: Path) -> Path:
    """A random learned head for ``backbone`` (kind head), as `prm train` would save one."""
    import numpy as np

    from specsearch.core.engine import Engine, LoadOptions
    from specsearch.core.prm_head import Head, file_sha256

    with Engine(backbone, LoadOptions(n_ctx=256)) as engine:
        width = engine.facts.n_embd
    rng = np.random.default_rng(0)
    Head(backbone_sha256=file_sha256(backbone), hidden_size=width,
         layers=[(rng.normal(0, 0.3, (width, 1)), np.zeros(1))]).save(out)
    return out


class TestPRMKindChoices:
    def test_choices_are_the_registered_kinds(self):
        from specsearch.cli.main import build_parser
        from specsearch.core.prm import PRM_KINDS, PRMKind, prm_kind_names, register_prm_kind

        register_prm_kind(PRMKind("test-kind", lambda engine=None, head=None: None, "registered by a test", False))
        try:
            parser = build_parser()  # choices are read when the parser is built
            for command in (["solve", "q"], ["bench"]):
                for kind in prm_kind_names():
                    assert parser.parse_args(command + ["--prm-kind", kind]).prm_kind == kind
                with pytest.raises(SystemExit):
                    parser.parse_args(command + ["--prm-kind", "no-such-kind"])
        finally:
            PRM_KINDS.pop("test-kind")
        assert "test-kind" not in prm_kind_names()

    def test_no_literal_kind_list_left_in_the_cli_or_app(self):
        import specsearch.app
        import specsearch.cli

        roots = [Path(specsearch.cli.__file__).parent, Path(specsearch.app.__file__).parent]
        offenders = [str(p) for root in roots for p in root.rglob("*.py") if '"step-tag"' in p.read_text("utf-8")]
        assert offenders == []


class TestHeadAndArithOptions:
    def test_no_arith_check_reaches_the_solver_and_the_search_record(self, capsys, tiny):
        from specsearch.cli.main import build_parser
        from specsearch.cli.search_args import make_solver

        common = ["solve", "q", "--small", str(tiny["draft"]), "--large", str(tiny["target"])]
        on = make_solver(build_parser().parse_args(common))
        off = make_solver(build_parser().parse_args(common + ["--no-arith-check"]))
        assert (on.arith_check, off.arith_check, on.prm_head, off.prm_head) == (True, False, None, None)
        events = solve_json(capsys, tiny, "--no-arith-check")
        assert events[0]["config"]["prm"] == {"kind": "judge", "model": "draft.gguf", "head": None,
                                              "arith_check": False}

    def test_reproducible_reaches_the_engines(self, capsys, tiny):
        from specsearch.cli.main import build_parser
        from specsearch.cli.search_args import make_solver

        common = ["bench", "--small", str(tiny["draft"]), "--large", str(tiny["target"])]
        plain = make_solver(build_parser().parse_args(common))
        exact = make_solver(build_parser().parse_args(common + ["--reproducible"]))
        try:
            assert (plain.batch_invariant, exact.batch_invariant) == (False, True)
            assert exact.engine("large").options.batch_invariant and not plain.engine("large").options.batch_invariant
        finally:
            plain.close()
            exact.close()

    def test_head_file_is_used_and_named(self, capsys, tiny, tmp_path):
        head = write_head(tiny["draft"], tmp_path / "my-head.npz")
        events = solve_json(capsys, tiny, "--prm", str(tiny["draft"]), "--prm-kind", "head", "--head", str(head))
        expected = {"kind": "head", "model": "draft.gguf", "head": "my-head.npz", "arith_check": True}
        assert events[0]["config"]["prm"] == expected
        scored = [e["score"] for e in events if e["event"] == "ThoughtScored"]
        assert scored and all(0.0 <= s <= 1.0 for s in scored)

    def test_bad_head_options_are_one_line_errors(self, capsys, tiny, tmp_path):
        base = ["solve", "q", "--small", str(tiny["draft"]), "--large", str(tiny["target"])]
        code, _, err = run_cli(capsys, *base, "--prm-kind", "judge", "--head", str(tmp_path / "h.npz"))
        assert code == 2 and "--head FILE is for --prm-kind head (or auto), not --prm-kind judge" in err
        assert len(err.strip().splitlines()) == 1
        code, _, err = run_cli(capsys, *base, "--prm-kind", "head", "--head", str(tmp_path / "missing.npz"))
        assert code == 2 and "missing.npz does not exist" in err and len(err.strip().splitlines()) == 1
        # a head trained on another backbone: refused when the PRM loads, still one line
        head = write_head(tiny["target"], tmp_path / "target-head.npz")
        code, _, err = run_cli(capsys, *base, *TINY_SEARCH, "--prm-kind", "head", "--head", str(head))
        assert code == 2 and "trained on backbone" in err and len(err.strip().splitlines()) == 1


class TestRewardModelErrors:
    def test_make_prm_raises_a_specsearch_error(self):
        from specsearch.core.errors import SpecSearchError
        from specsearch.core.prm import PRMKindError, make_prm

        with pytest.raises(PRMKindError, match="unknown PRM kind 'magic'; choose from judge") as unknown:
            make_prm("magic", None)
        with pytest.raises(PRMKindError, match="needs a reward model file") as missing:
            make_prm("judge", None)
        for exc in (unknown.value, missing.value):
            assert isinstance(exc, SpecSearchError) and not isinstance(exc, ValueError)

    def test_unknown_kind_in_the_api_and_the_app_is_one_plain_line(self, tiny):
        from specsearch.app.search_worker import describe_error
        from specsearch.core.prm import PRMKindError

        solver = Solver(small=tiny["draft"], prm=tiny["draft"], prm_kind="magic")
        with pytest.raises(PRMKindError) as caught:
            solver.reward_model()
        assert describe_error(caught.value) == str(caught.value)  # no "ValueError:" prefix
        assert solver._engines == {}  # refused before loading anything

    def test_arith_needs_no_model_file(self, tiny):
        from specsearch.core.arithmetic import ArithmeticPRM

        with Solver(small=tiny["draft"], large=tiny["target"], prm=None, prm_kind="arith") as solver:
            prm = solver.reward_model()
            assert isinstance(prm, ArithmeticPRM)
            assert prm.score("q", ["20 - 12 = 9", "20 - 12 = 8"]) == [0.0, 1.0]
            result = solver.solve("What is 3 + 4?", SearchConfig(max_depth=1, max_step_tokens=4, children=2))
            assert all(n.score in (0.0, 1.0) for n in result.nodes)
            assert "prm" not in solver._engines
            assert solver.prm_description() == {"kind": "arith", "model": None, "head": None, "arith_check": True}

    def test_arith_kind_from_the_cli_loads_no_reward_model(self, capsys, tiny):
        events = solve_json(capsys, tiny, "--prm-kind", "arith")
        assert events[0]["config"]["prm"]["kind"] == "arith"
        assert {e["score"] for e in events if e["event"] == "ThoughtScored"} <= {0.0, 1.0}

    def test_prm_eval_still_reports_a_kind_the_model_cannot_serve_in_one_line(self, capsys, tiny):
        code, _, err = run_cli(capsys, "prm", "eval", "--prm", str(tiny["draft"]), "--prm-kind", "head",
                               "--data", "gsm8k", "--n", "2")
        assert code == 2 and "no head ships for draft.gguf" in err and len(err.strip().splitlines()) == 1


class TestPRMShownInSolveAndBench:
    def test_text_header_names_the_reward_model(self, capsys, tiny):
        code, out, _ = run_cli(capsys, "solve", "What is 3 + 4?", "--small", str(tiny["draft"]),
                               "--large", str(tiny["target"]), *TINY_SEARCH)
        lines = out.splitlines()
        assert code == 0
        assert lines[0].startswith("method auto:")
        assert lines[1] == "reward model: judge on draft.gguf, arithmetic check on"

    def test_json_records_it_at_start_and_in_the_result(self, capsys, tiny):
        events = solve_json(capsys, tiny, "--prm", str(tiny["target"]))
        expected = {"kind": "judge", "model": "target.gguf", "head": None, "arith_check": True}
        assert events[0]["event"] == "SearchStarted" and events[0]["config"]["prm"] == expected
        assert events[-1]["event"] == "SearchFinished" and events[-1]["result"]["config"]["prm"] == expected

    def test_bench_table_json_and_records(self, capsys, tiny, tmp_path):
        data = tmp_path / "probs.jsonl"
        data.write_text(json.dumps({"question": "What is 1 + 1?", "answer": "2"}) + "\n")
        args = ["bench", "--dataset", str(data), "--n", "1", "--methods", "small",
                "--small", str(tiny["draft"]), "--large", str(tiny["target"]), *TINY_SEARCH,
                "--out", str(tmp_path / "b")]
        code, out, _ = run_cli(capsys, *args, "--no-arith-check")
        assert code == 0
        assert out.splitlines()[0] == "reward model: judge on draft.gguf, arithmetic check off"
        off = {"kind": "judge", "model": "draft.gguf", "head": None, "arith_check": False}
        [record] = [json.loads(x) for x in (tmp_path / "b" / "results.jsonl").read_text().splitlines()]
        assert record["prm"] == off
        assert json.loads((tmp_path / "b" / "summary.json").read_text())["small"]["prm"] == off
        # another reward model: the pair runs again instead of reusing the other PRM's result
        code, out, _ = run_cli(capsys, *args, "--json")
        on = dict(off, arith_check=True)
        assert code == 0 and json.loads(out)["small"]["prm"] == on
        records = [json.loads(x) for x in (tmp_path / "b" / "results.jsonl").read_text().splitlines()]
        assert [r["prm"] for r in records] == [off, on]


class TestArithmeticFlagInSolveText:
    """TextPrinter on a hand-made event stream (the tiny models write no arithmetic)."""

    def render(self, events) -> list[str]:
        import io

        from specsearch.cli.solve_cmd import TextPrinter

        out = io.StringIO()
        printer = TextPrinter(out)
        for event in events:
            printer.handle(event)
        return out.getvalue().splitlines()

    def test_flag_follows_the_score(self):
        from specsearch.core import events as ev
        from specsearch.core.tree import ThoughtNode

        flag = "20 − 12 = 8, not 9"
        lines = self.render([
            ev.StepStarted(1, (), None),
            ev.ThoughtDrafted(ThoughtNode(0, None, 1, "20 - 12 = 9", 5, "large", "generated")),
            ev.ThoughtDrafted(ThoughtNode(1, None, 1, "20 - 12 = 8", 5, "large", "generated")),
            ev.ThoughtScored(0, 0.05, flag),
            ev.ThoughtScored(1, 0.9, None),
            ev.BeamsSelected(1, (1, 0), ()),
            ev.StepStarted(2, (1,), 0.5),
            ev.ThoughtDrafted(ThoughtNode(2, 1, 2, "so 8 + 1 = 10", 5, "small", "pending")),
            ev.ThoughtDrafted(ThoughtNode(3, 1, 2, "so 8 + 1 = 9", 5, "small", "pending")),
            ev.ThoughtScored(2, 0.05, "8 + 1 = 9, not 10"),
            ev.ThoughtScored(3, 0.7, None),
            ev.ThoughtRejected(2, 0.05, 0.5),
            ev.ThoughtAccepted(3, 0.7, 0.5),
        ])
        # a thought no acceptance test follows: its own line, before the beam selection
        i = lines.index(f"  ⚠ #0   score 0.050  {flag}")
        assert lines[i + 1].startswith("  ★ kept")
        assert "  ✗ #2   rejected  score 0.050 < β 0.500  ⚠ 8 + 1 = 9, not 10" in lines
        assert "  ✓ #3   accepted  score 0.700 ≥ β 0.500" in lines
        assert sum("⚠" in line for line in lines) == 2

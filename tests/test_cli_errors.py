"""How `specsearch` ends: one line of error and exit code 2 for what a user can
cause, 130 for an interrupt, one line and a pointer to SPECSEARCH_DEBUG for a
bug; and `generate --stop` keeps non-ASCII text as written."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from specsearch.cli import info_cmd
from specsearch.cli.main import build_parser, main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def failing_info(monkeypatch, exc: BaseException) -> None:
    """`specsearch info` raises ``exc`` (the parser picks up the patched function when built)."""
    def run(args):
        raise exc
    monkeypatch.setattr(info_cmd, "run", run)


class TestMainEndsEveryRunInOneLine:
    @pytest.mark.parametrize("exc,code,line", [
        (ValueError("top_p must be in [0, 1], not 2.0"), 2, "specsearch: error: top_p must be in [0, 1], not 2.0"),
        (OSError(errno.ENOSPC, "No space left on device", "/data/x.json"), 2,
         "specsearch: error: /data/x.json: No space left on device"),
        (PermissionError(errno.EACCES, "Permission denied", "/m.gguf"), 2, "specsearch: error: /m.gguf: Permission denied"),
        (KeyboardInterrupt(), 130, "specsearch: interrupted"),
        (RuntimeError("boom\nsecond line"), 1,
         "specsearch: internal error: RuntimeError: boom second line (run with SPECSEARCH_DEBUG=1 for the traceback)"),
    ])
    def test_one_line_and_its_exit_code(self, capsys, monkeypatch, exc, code, line):
        monkeypatch.delenv("SPECSEARCH_DEBUG", raising=False)
        failing_info(monkeypatch, exc)
        assert run_cli(capsys, "info", "x.gguf") == (code, "", line + "\n")

    def test_debug_prints_the_traceback(self, capsys, monkeypatch):
        monkeypatch.setenv("SPECSEARCH_DEBUG", "1")
        failing_info(monkeypatch, RuntimeError("boom"))
        code, _, err = run_cli(capsys, "info", "x.gguf")
        assert code == 1
        assert err.startswith("Traceback (most recent call last):") and "in run" in err
        assert err.splitlines()[-1] == "specsearch: internal error: RuntimeError: boom"

    def test_negative_n_ctx_is_refused_not_wrapped(self, capsys, tiny):
        for command in (["generate", "--model", str(tiny["target"]), "--prompt", "x"],
                        ["solve", "q", "--small", str(tiny["draft"]), "--large", str(tiny["target"])],
                        ["bench", "engine", "--small", str(tiny["draft"]), "--large", str(tiny["target"])]):
            code, _, err = run_cli(capsys, *command, "--n-ctx=-5")
            assert code == 2 and err == "specsearch: error: n_ctx must be in [1, 2147483647], not -5\n"

    def test_sampling_numbers_of_generate_are_refused_before_loading(self, capsys, tmp_path):
        missing = str(tmp_path / "none.gguf")  # never opened: the numbers are checked first
        for flag, value, message in (("--temperature", "nan", "temperature must be a number, not NaN"),
                                     ("--temperature", "inf", "temperature must be finite, not inf"),
                                     ("--top-p", "2", "top_p must be in [0, 1], not 2.0"),
                                     ("--draft-k", "1000000000", "--draft-k must be in [1, 256]"),
                                     ("--threads", "0", "n_threads must be in [1, 512], not 0")):
            code, _, err = run_cli(capsys, "generate", "--model", missing, "--prompt", "x", f"{flag}={value}")
            assert code == 2 and err.startswith(f"specsearch: error: {message}") and err.count("\n") == 1

    def test_prm_train_checks_its_numbers_before_extracting_features(self, capsys, tmp_path):
        base = ["prm", "train", "--backbone", str(tmp_path / "none.gguf"), "--data", "gsm8k",
                "--out", str(tmp_path / "h.npz")]
        for extra, message in ((["--l2=nan"], "--l2 must be a number, not NaN"),
                               (["--hidden=0"], "--hidden must be in [1, 65536], not 0"),
                               (["--seed=-1"], "--seed must be in [0, 4294967295], not -1"),
                               (["--epochs=0"], "--epochs must be in [1, 1048576], not 0"),
                               (["--patience=-3"], "--patience must be in [1, 1048576], not -3"),
                               (["--threads=-2"], "n_threads must be in [1, 512], not -2")):
            code, _, err = run_cli(capsys, *base, *extra)
            assert (code, err) == (2, f"specsearch: error: {message}\n")

    def test_prm_eval_refuses_a_head_its_kind_does_not_read(self, capsys, tmp_path):
        code, _, err = run_cli(capsys, "prm", "eval", "--prm-kind", "judge", "--head", str(tmp_path / "h.npz"),
                               "--data", "gsm8k")
        assert (code, err) == (2, "specsearch: error: --head FILE is for --prm-kind head (or auto), "
                                  "not --prm-kind judge\n")

    def test_models_settings_with_a_word_for_a_number_is_one_line(self, capsys, tiny):
        from specsearch.models import Registry

        Registry.load().import_file(tiny["target"], name="big", link=True)
        code, _, err = run_cli(capsys, "models", "settings", "big", "--n-gpu-layers", "abc")
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert "n_gpu_layers" in err
        assert run_cli(capsys, "models", "settings", "big", "--n-gpu-layers", "auto")[0] == 0

    def test_the_console_command_prints_no_traceback(self, tmp_path):
        env = dict(os.environ, SPECSEARCH_DATA_DIR=str(tmp_path / "d"), SPECSEARCH_CONFIG_DIR=str(tmp_path / "c"))
        env.pop("SPECSEARCH_DEBUG", None)
        done = subprocess.run([sys.executable, "-m", "specsearch.cli", "solve", "q", "--theta", "2", "--beam", "0"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2
        assert done.stderr == "specsearch: error: beam_width must be at least 1, not 0\n"


class TestGenerateStopKeepsNonAscii:
    def test_parsing(self):
        argv = ["generate", "--model", "m.gguf", "--prompt", "p"]
        for given, meant in (("→", "→"), ("。", "。"), ("é\\n", "é\n"), ("\\n\\n", "\n\n"), ("\\u2192", "→"),
                             ("a\\\\b", "a\\b"), ("\\q", "\\q"), ("end\\", "end\\")):
            assert build_parser().parse_args([*argv, "--stop", given]).stop == [meant], given
        with pytest.raises(SystemExit):
            build_parser().parse_args([*argv, "--stop", "\\N{NO SUCH CHARACTER}"])

    def test_a_non_ascii_stop_ends_the_text(self, capsys, tiny):
        args = ["generate", "--model", str(tiny["target"]), "--prompt", "hello", "--max-tokens", "40", "--json"]
        _, out, _ = run_cli(capsys, *args)
        text = json.loads(out)["texts"][0]
        stop = next(c for c in text[1:] if ord(c) > 127 and c != "\ufffd")  # the tiny model writes bytes at random
        code, out, err = run_cli(capsys, *args, "--stop", stop)
        data = json.loads(out)
        assert code == 0, err
        assert data["texts"][0] == text[: text.index(stop)]
        assert data["finish_reasons"] == ["stop"]

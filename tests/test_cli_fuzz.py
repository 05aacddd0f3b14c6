"""Fuzz the `specsearch` command line: every subcommand, given bad values.

Each generated invocation starts from a command that would run (tiny models,
small files) and spoils one to three of its values with something that must be
refused: NaN, infinities, numbers out of range, text where a number goes,
missing or wrong files (a truncated GGUF, a text file, a folder), unknown
choices.  Every invocation must end with exit code 2 (argparse's or main's
one-line error) and no traceback, and leave the data, config and models
folders (and the working folder) exactly as they were.  The generator is
seeded, so the same invocations run every time.

`models settings --n-ctx/--threads` with negative numbers: the registry refuses
them before it takes its lock (models/entry.py), tested on their own below.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from specsearch.cli.main import main

SEED = 12
CASES_PER_COMMAND = 20

NAN_INF = ["nan", "NaN", "inf", "-inf", "1e999"]
NOT_A_NUMBER = ["abc", "", " ", "1,5", "0x10", "½", "1e"]
# Bad values by what a flag takes: every one of them must be refused for such a flag.
BAD = {
    "count": ["0", "-1", "-99999999999999999999", "1.5", *NAN_INF, *NOT_A_NUMBER],  # a whole number >= 1
    "unit": ["-0.1", "1.0001", "2", "-inf", *NAN_INF, *NOT_A_NUMBER],  # a number in [0, 1]
    "nonneg": ["-1e-9", "-5", *NAN_INF, *NOT_A_NUMBER],  # a finite number >= 0
    "finite": [*NAN_INF, *NOT_A_NUMBER],  # any finite number
    "beta": ["nan", "NaN", *NOT_A_NUMBER],  # any number but NaN (±inf has a meaning for β)
    "int": ["1.5", "nan", "inf", *NOT_A_NUMBER],  # any whole number
    "n_ctx": ["0", "-5", "-1", "99999999999999", "4294967297", "nan", *NOT_A_NUMBER],
    "threads": ["0", "-3", "1000000", "nan", *NOT_A_NUMBER],
    "gpu": ["-2", "-99", "99999999999999", "nan", "1.5", *NOT_A_NUMBER],
    "choice": ["nope", "", "ALL", "None"],
    "name": ["nope", "", "../../etc/passwd", "big ", "-"],
}


@dataclass
class Flag:
    """A flag of a command: its good value in the base invocation and the kind of bad value it gets."""

    flag: str
    good: str | None
    kind: str


@pytest.fixture
def world(tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Data, config and models dirs with two registered models; the inputs, in a work folder."""
    home = tmp_path / "home"
    for env, sub in (("SPECSEARCH_DATA_DIR", "data"), ("SPECSEARCH_CONFIG_DIR", "config"),
                     ("SPECSEARCH_MODELS_DIR", "models"), ("HF_HOME", "hf")):
        monkeypatch.setenv(env, str(home / sub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # never the real Hub, even if offline is ignored
    monkeypatch.delenv("SPECSEARCH_DEBUG", raising=False)
    from specsearch.models import Registry

    reg = Registry.load()
    reg.import_file(tiny["target"], name="big", role="large", link=True)
    reg.import_file(tiny["draft"], name="little", role="small", link=True)
    reg.set_default("large", "big")
    reg.set_default("small", "little")

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "truncated.gguf").write_bytes(tiny["target"].read_bytes()[:3000])
    (work / "text.gguf").write_text("not a model\n")
    (work / "folder").mkdir()
    (work / "problems.jsonl").write_text(json.dumps({"question": "What is 1 + 1?", "answer": "2"}) + "\n")
    (work / "broken.jsonl").write_text('{"question": "no answer"\n')
    rows = [{"id": f"t{i}", "problem": f"What is {i} + 1?", "steps": [f"{i} + 1 = {i + 1 + (i % 2)}"],
             "final_answer_correct": i % 2 == 0, "label": 0 if i % 2 else -1} for i in range(4)]
    (work / "items.json").write_text(json.dumps(rows))
    (work / "broken.json").write_text("[{")
    return {"home": home, "work": work, "target": tiny["target"], "draft": tiny["draft"], "alien": tiny["alien"]}


def bad_paths(world: dict[str, Path]) -> list[str]:
    w = world["work"]
    return [str(w / "missing.gguf"), str(w / "truncated.gguf"), str(w / "text.gguf"), str(w / "folder"), "",
            str(w / "text.gguf" / "below")]


def commands(world: dict[str, Path]) -> dict[str, tuple[list[str], list[Flag]]]:
    """Each (sub)command: its positional words and its flags (good value, bad kind)."""
    t, d, w = str(world["target"]), str(world["draft"]), world["work"]
    small_search = [Flag("--depth", "1", "count"), Flag("--step-tokens", "4", "count"),
                    Flag("--children", "2", "count"), Flag("--beam", "1", "count")]
    search = [
        *small_search, Flag("--temperature", None, "nonneg"), Flag("--top-k", None, "nonneg"),
        Flag("--top-p", None, "unit"), Flag("--min-p", None, "unit"), Flag("--theta", None, "unit"),
        Flag("--quantile", None, "unit"), Flag("--fixed-beta", None, "beta"),
        Flag("--threshold-margin", None, "finite"), Flag("--seed", None, "int"),
        Flag("--aggregation", None, "choice"), Flag("--threshold-stat", None, "choice"),
        Flag("--threshold-mode", None, "choice"), Flag("--answer-selection", None, "choice"),
        Flag("--prm-kind", None, "choice"), Flag("--n-ctx", None, "n_ctx"), Flag("--threads", None, "threads"),
        Flag("--n-gpu-layers", None, "gpu"), Flag("--small", d, "path"), Flag("--large", t, "path"),
        Flag("--prm", None, "opt-path"), Flag("--head", None, "opt-path"),
    ]
    return {
        "info": (["info"], [Flag("", t, "path")]),
        "info --system": (["info", "--system"], [
            Flag("--small", d, "opt-path"), Flag("--large", None, "opt-name"), Flag("--n-gpu-layers", None, "gpu"),
            Flag("--threads", "1", "threads")]),
        "generate": (["generate", "--prompt", "2 + 2 ="], [
            Flag("--model", t, "path"), Flag("--draft", None, "opt-path"), Flag("--max-tokens", "4", "count"),
            Flag("--n", "1", "count"), Flag("--temperature", None, "nonneg"), Flag("--top-k", None, "nonneg"),
            Flag("--top-p", None, "unit"), Flag("--min-p", None, "unit"), Flag("--seed", None, "int"),
            Flag("--draft-k", None, "count"), Flag("--n-ctx", None, "n_ctx"), Flag("--threads", None, "threads"),
            Flag("--n-gpu-layers", None, "gpu"), Flag("--stop", None, "escape"),
        ]),
        "solve": (["solve", "What is 3 + 4?"], [*search, Flag("--method", None, "choice")]),
        "bench": (["bench", "--out", str(w / "bench-out")], [
            *search, Flag("--dataset", str(w / "problems.jsonl"), "dataset"), Flag("--n", "1", "count"),
            Flag("--methods", "ar", "methods"), Flag("--sweep", None, "sweep"),
        ]),
        "bench engine": (["bench", "engine"], [
            Flag("--small", d, "path"), Flag("--large", t, "path"), Flag("--n-ctx", None, "n_ctx"),
            Flag("--threads", None, "threads"), Flag("--prompts", str(w / "problems.jsonl"), "dataset"),
        ]),
        "models pull": (["models", "pull"], [Flag("", "nope", "name"), Flag("--role", None, "choice")]),
        "models import": (["models", "import"], [Flag("", None, "path"), Flag("--role", None, "choice")]),
        "models rm": (["models", "rm"], [Flag("", None, "name")]),
        "models verify": (["models", "verify"], [Flag("", None, "opt-name")]),
        "models set-default": (["models", "set-default"], [
            Flag("--small", None, "name"), Flag("--large", None, "name"), Flag("--prm", None, "name")]),
        "models settings": (["models", "settings"], [
            Flag("", "big", "name"), Flag("--n-gpu-layers", None, "gpu-text")]),
        "models drafts": (["models", "drafts"], [Flag("", None, "name")]),
        "models list": (["models", "list", "--json"], [Flag("--bogus", None, "extra")]),
        "models catalog": (["models", "catalog"], [Flag("--bogus", None, "extra")]),
        "models pack": (["models", "pack"], [Flag("--bogus", None, "extra")]),
        "prm eval": (["prm", "eval", "--prm-kind", "arith"], [
            Flag("--data", str(w / "items.json"), "process"), Flag("--calibrate", str(w / "items.json"), "process"),
            Flag("--n", None, "count"), Flag("--calibrate-n", None, "count"), Flag("--threads", None, "threads"),
            Flag("--n-ctx", None, "n_ctx"), Flag("--plot", None, "out"),
        ]),
        "prm eval judge": (["prm", "eval", "--prm-kind", "judge", "--data", str(w / "items.json"),
                            "--calibrate", str(w / "items.json")], [
            Flag("--prm", t, "path"), Flag("--head", None, "opt-path"), Flag("--threads", None, "threads"),
            Flag("--n-ctx", None, "n_ctx"), Flag("--prm-kind", None, "choice"),
        ]),
        "prm train": (["prm", "train", "--out", str(w / "head.npz")], [
            Flag("--backbone", t, "path"), Flag("--data", str(w / "items.json"), "process"),
            Flag("--model", None, "choice"), Flag("--features", None, "features"), Flag("--l2", None, "nonneg"),
            Flag("--hidden", None, "count"), Flag("--held-out", None, "open-unit"), Flag("--seed", None, "seed"),
            Flag("--threads", None, "threads"),
        ]),
        "prm convert-head": (["prm", "convert-head", "--out", str(w / "conv.npz")], [
            Flag("--kind", "skywork", "choice"), Flag("--weights", str(w / "text.gguf"), "path"),
            Flag("--backbone", t, "path"),
        ]),
    }


def bad_value(kind: str, world: dict[str, Path], rng: random.Random) -> str:
    w = world["work"]
    extra = {
        "path": bad_paths(world),
        "opt-path": [p for p in bad_paths(world) if p],  # "" is "not given" for an optional model
        "opt-name": [n for n in BAD["name"] if n],
        "dataset": [str(w / "missing.jsonl"), str(w / "broken.jsonl"), str(w / "folder"), "", "gsm9k"],
        "process": [str(w / "missing.json"), str(w / "broken.json"), str(w / "folder"), "processbench:nope",
                    "processbench:gsm8k", ""],
        "methods": ["nope", "", ",", "specsearch@beam_width=0", "specsearch@temperature=nan",
                    "specsearch@theta=2", "specsearch@nope=1", "ar@threshold_quantile=inf", "@", "specsearch@"],
        "sweep": ["theta=2", "threshold_margin=nan", "beam_width=0,1", "nope=1", "theta", "theta=", "=1"],
        "escape": ["\\N{NO SUCH CHARACTER}"],
        "gpu-text": ["abc", "", "1.5", "nan", "-2", "auto?"],
        "extra": ["--bogus", "--json=1", "-x"],
        "out": [str(w / "folder"), str(w / "text.gguf" / "below.png")],
        "features": ["", ",", "nope", "hidden,nope"],
        "open-unit": ["0", "1", "-0.5", "1.5", *NAN_INF, *NOT_A_NUMBER],
        "seed": ["-1", "4294967296", "1.5", "nan", *NOT_A_NUMBER],
    }
    values = BAD.get(kind) or extra[kind]
    parsed = [v for v in values if v not in NOT_A_NUMBER]
    # Mostly values that parse, so that most invocations get past argparse to the checks behind it.
    return rng.choice(parsed if parsed and rng.random() < 0.8 else values)


def generate_cases(world: dict[str, Path], rng: random.Random) -> list[list[str]]:
    """CASES_PER_COMMAND invocations per (sub)command, each with one to three values spoiled."""
    cases = []
    for words, flags in commands(world).values():
        for _ in range(CASES_PER_COMMAND):
            spoiled = {id(f): bad_value(f.kind, world, rng)
                       for f in rng.sample(flags, k=min(len(flags), rng.choice((1, 1, 1, 2, 3))))}
            argv, positional = list(words), []
            for f in flags:
                value = spoiled.get(id(f), f.good)
                if value is None:
                    continue
                if f.kind == "extra":
                    argv.append(value)
                elif f.flag:
                    argv.append(f"{f.flag}={value}")  # = keeps values such as "-1" from reading as flags
                else:
                    positional.append(value)
            if any(v.startswith("-") for v in positional):
                positional.insert(0, "--")
            cases.append(argv + positional)
    return cases


def snapshot(world: dict[str, Path]) -> dict[str, str]:
    """Every file and folder in the user dirs and the work folder: path -> SHA-256 of the
    content (folders: "dir").  Left out: bench's --out folder, where a bench that fails
    after it started (a head file found unreadable at the first search) keeps its results file."""
    out = {}
    for root in (world["home"], world["work"]):
        for p in sorted(root.rglob("*")):
            if p.is_relative_to(world["work"] / "bench-out"):
                continue
            out[str(p)] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[object, str]:
    """(exit code or the exception main let out, stderr) of one in-process run."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    try:
        code: object = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    except BaseException:  # main let something out: what the console script would print as a traceback
        code = "escaped:\n" + traceback.format_exc()
    return code, capsys.readouterr().err


def test_no_bad_value_gives_a_traceback_or_changes_a_file(world, capsys, monkeypatch):
    cases = generate_cases(world, random.Random(SEED))
    # the subcommands' own --help must still print and exit 0
    cases += [["--help"], ["solve", "--help"], ["prm", "train", "--help"], ["models", "settings", "--help"],
              [], ["nope"], ["models"], ["prm"], ["models", "nope"]]
    assert len(cases) >= 200
    before = snapshot(world)
    problems, timings, log = [], [], []
    for argv in cases:
        start = time.monotonic()
        code, err = run(argv, capsys, monkeypatch)
        timings.append((time.monotonic() - start, argv))
        log.append(f"{timings[-1][0]:.2f}s {code} {argv} :: {err.strip().splitlines()[-1:] }")
        help_ok = "--help" in argv and code == 0
        if not help_ok and code != 2 or "Traceback" in err:
            problems.append(f"{argv}: exit {code}\n{err}")
        elif not help_ok and not err.strip():
            problems.append(f"{argv}: exit 2 without a message")
        after = snapshot(world)
        if after != before:
            changed = sorted(set(after.items()) ^ set(before.items()))
            problems.append(f"{argv}: changed {changed}")
            before = after
    slowest = sorted(timings, reverse=True)[:3]
    if os.environ.get("FUZZ_LOG"):
        Path(os.environ["FUZZ_LOG"]).write_text("\n".join(log))
    assert not problems, f"{len(problems)} of {len(cases)} invocations failed:\n" + "\n".join(problems)
    assert sum(t for t, _ in timings) < 60, f"too slow; slowest: {slowest}"


@pytest.mark.parametrize("flag,value", [("--n-ctx", "-5"), ("--threads", "-1")])
def test_models_settings_refuses_negative_numbers(world, capsys, monkeypatch, flag, value):
    before = snapshot(world)
    code, err = run(["models", "settings", "big", f"{flag}={value}"], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err
    assert snapshot(world) == before

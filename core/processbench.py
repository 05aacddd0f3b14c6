"""ProcessBench items: loading, balanced samples, scoring them with a reward model.

A ProcessBench file (Zheng et al., 2024; https://github.com/QwenLM/ProcessBench)
is a JSON array (JSON Lines also read) of objects with ``id``, ``problem``,
``steps`` (list of step texts), ``label`` (index of the first wrong step, -1
when every step is right) and ``final_answer_correct``.  Sources:

* ``gsm8k`` -- the packaged excerpt ``data/processbench_gsm8k_dev.json``;
* ``processbench:SPLIT`` -- a split of the Hub dataset ``Qwen/ProcessBench``
  (gsm8k, math, olympiadbench, omnimath), downloaded and cached by
  huggingface_hub (``HF_HUB_OFFLINE=1`` uses the cache only);
* any other value -- a file path.

:func:`evaluate_prm` scores a sample with a :class:`~.prm.RewardModel` and
computes the metrics of :mod:`.prm_metrics`, with the F1 threshold chosen on
separate calibration items::

    data = load_process_set("processbench:math")
    items = balanced_sample(data.items, 100)
    calibration, _ = calibration_sample(load_process_set("gsm8k"), 100, items, data.key)
    with Solver(prm="P.gguf", prm_kind="judge") as solver:
        result = evaluate_prm(solver.reward_model(), items, calibration)
    print(result.to_dict())
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

import numpy as np

from .errors import SpecSearchError
from .prm import RewardModel
from .prm_metrics import F1Result, best_threshold, processbench_f1, step_auroc, step_classes
from .text import jsonl_lines

__all__ = [
    "HUB_REPO", "HUB_SPLITS", "PACKAGED", "PRMEvaluation", "ProcessBenchError", "ProcessItem",
    "ProcessSet", "ScoredItems", "balanced_sample", "calibration_sample", "evaluate_prm",
    "load_process_set", "parse_items", "score_items",
]

PACKAGED: dict[str, str] = {"gsm8k": "processbench_gsm8k_dev.json"}
"""Packaged ProcessBench excerpts: name -> file in specsearch/core/data/."""

HUB_REPO = "Qwen/ProcessBench"
HUB_SPLITS: dict[str, str] = {
    "gsm8k": "gsm8k.json",
    "math": "math.json",
    "olympiadbench": "olympiadbench.json",
    "omnimath": "omnimath.json",
}
"""Splits of the Hub dataset and their files (the dataset card's data_files)."""

HUB_PREFIX = "processbench:"


class ProcessBenchError(SpecSearchError):
    """ProcessBench data could not be found, downloaded or read, or scored."""


@dataclass(frozen=True)
class ProcessItem:
    id: str
    problem: str
    steps: tuple[str, ...]
    label: int
    """Index of the first wrong step; -1 when every step is right."""
    final_answer_correct: bool

    @property
    def has_error(self) -> bool:
        return self.label >= 0

    @property
    def judged_steps(self) -> tuple[str, ...]:
        """The steps the metrics use: all of a correct item, up to the first error otherwise."""
        return self.steps if self.label < 0 else self.steps[: self.label + 1]


@dataclass(frozen=True)
class ProcessSet:
    items: list[ProcessItem]
    key: str
    """Identifies the file: "packaged:NAME", "hub:SPLIT" or an absolute path."""
    description: str


# ------------------------------------------------------------------ parsing ---
def _item(obj: Any, where: str) -> ProcessItem:
    if not isinstance(obj, dict):
        raise ProcessBenchError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    raw_id = obj.get("id")
    if raw_id is not None:
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or raw_id == "":
            raise ProcessBenchError(f"{where}: 'id' must be a non-empty string or an integer")
        where = f"{where} (id {raw_id})"
    missing = [k for k in ("id", "problem", "steps", "label") if obj.get(k) is None]
    if missing:
        raise ProcessBenchError(f"{where}: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    problem, steps, label = obj["problem"], obj["steps"], obj["label"]
    if not isinstance(problem, str) or not problem.strip():
        raise ProcessBenchError(f"{where}: 'problem' must be a non-empty string")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        raise ProcessBenchError(f"{where}: 'steps' must be a non-empty list of strings")
    if isinstance(label, bool) or not isinstance(label, int):
        raise ProcessBenchError(f"{where}: 'label' must be an integer (first wrong step, or -1)")
    if not -1 <= label < len(steps):
        raise ProcessBenchError(f"{where}: label {label} is out of range for {len(steps)} steps "
                                f"(0..{len(steps) - 1}, or -1 for no error)")
    final = obj.get("final_answer_correct", label < 0)
    if not isinstance(final, bool):
        raise ProcessBenchError(f"{where}: 'final_answer_correct' must be true or false")
    return ProcessItem(str(raw_id), problem, tuple(steps), label, final)


def parse_items(text: str, source: str = "<string>") -> list[ProcessItem]:
    """Items from a JSON array (ProcessBench's format) or JSON Lines text; errors name ``source``."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProcessBenchError(f"{source}: invalid JSON ({exc.msg} at line {exc.lineno}, "
                                    f"column {exc.colno})") from exc
        located = [(f"{source}, item {i}", row) for i, row in enumerate(rows)]
    elif stripped.startswith("{"):
        located = []
        for lineno, line in jsonl_lines(text):
            try:
                located.append((f"{source}, line {lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ProcessBenchError(f"{source}, line {lineno}: invalid JSON ({exc.msg} at "
                                        f"column {exc.colno})") from exc
    else:
        raise ProcessBenchError(f"{source}: not ProcessBench data (expected a JSON array of items "
                                "or JSON Lines)")
    items: list[ProcessItem] = []
    seen: dict[str, str] = {}
    for where, row in located:
        item = _item(row, where)
        if item.id in seen:
            raise ProcessBenchError(f"{where}: duplicate id {item.id!r} (first at {seen[item.id]})")
        seen[item.id] = where
        items.append(item)
    if not items:
        raise ProcessBenchError(f"{source}: contains no items")
    return items


# ------------------------------------------------------------------ sources ---
def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _download_split(split: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if split not in HUB_SPLITS:
        raise ProcessBenchError(f"unknown ProcessBench split {split!r}; choose from {', '.join(HUB_SPLITS)}")
    filename = HUB_SPLITS[split]
    try:
        # huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE once at import; read them per call.
        return Path(hf_hub_download(repo_id=HUB_REPO, repo_type="dataset", filename=filename,
                                    endpoint=os.environ.get("HF_ENDPOINT") or None,
                                    local_files_only=_offline()))
    except LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set" if _offline() else "the Hub cannot be reached"
        raise ProcessBenchError(f"{why} and {HUB_REPO}/{filename} is not in the Hugging Face cache; "
                                "download it once online or pass a local ProcessBench JSON file") from exc
    except (HfHubHTTPError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProcessBenchError(f"cannot download {HUB_REPO}/{filename}: {first_line}") from exc


def _read_file(path: Path, shown: str) -> str:
    if not path.exists():
        raise ProcessBenchError(f"ProcessBench data {shown!r} not found: no such file, not a packaged "
                                f"set ({', '.join(PACKAGED)}) and not processbench:SPLIT "
                                f"({', '.join(HUB_SPLITS)})")
    if not path.is_file():
        raise ProcessBenchError(f"ProcessBench data {shown!r} is not a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProcessBenchError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ProcessBenchError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def load_process_set(spec: str | Path) -> ProcessSet:
    """The items of a packaged name (``gsm8k``), ``processbench:SPLIT`` or a file path."""
    name = str(spec)
    if not isinstance(spec, Path) and name.lower() in PACKAGED:
        key = name.lower()
        ref = resources.files("specsearch.core").joinpath("data").joinpath(PACKAGED[key])
        try:
            text = ref.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ProcessBenchError(f"packaged ProcessBench set {key!r} is missing from the installation") from exc
        return ProcessSet(parse_items(text, key), f"packaged:{key}", f"packaged ProcessBench {key} dev excerpt")
    if not isinstance(spec, Path) and name.lower().startswith(HUB_PREFIX):
        split = name[len(HUB_PREFIX):].strip().lower()
        path = _download_split(split)
        return ProcessSet(parse_items(_read_file(path, name), name), f"hub:{split}", f"{HUB_REPO} {split} split")
    path = Path(name).expanduser()
    items = parse_items(_read_file(path, name), str(path))
    return ProcessSet(items, str(path.resolve()), str(path))


# ----------------------------------------------------------------- sampling ---
def balanced_sample(
    items: Sequence[ProcessItem], n: int | None, *, exclude: Collection[str] = (), up_to: bool = False
) -> list[ProcessItem]:
    """A deterministic sample of ``n`` items: n // 2 with an error and the rest correct.

    ProcessBench files list erroneous items first, so the first ``n`` would
    be one-sided; instead each class contributes items spread evenly over
    the file (the middle of ``k`` equal stretches), kept in file order.
    ``exclude`` holds ids to leave out.  Too few items of a class raise
    :class:`ProcessBenchError`, unless ``up_to`` (then that class gives all
    it has).  ``n`` None: every item not excluded.
    """
    excluded = set(exclude)
    pool = [it for it in items if it.id not in excluded]
    if n is None:
        return pool
    if n < 2:
        raise ProcessBenchError(f"a balanced sample needs at least 2 items (got --n {n})")
    want = {True: n // 2, False: n - n // 2}
    chosen: list[int] = []
    for has_error in (True, False):
        group = [i for i, it in enumerate(pool) if it.has_error == has_error]
        if len(group) < want[has_error] and not up_to:
            kind = "with an error" if has_error else "fully correct"
            raise ProcessBenchError(f"a balanced sample of {n} needs {want[has_error]} items {kind}, "
                                    f"but there are only {len(group)} (use a smaller --n)")
        k = min(want[has_error], len(group))
        chosen += [group[(2 * j + 1) * len(group) // (2 * k)] for j in range(k)]
    return [pool[i] for i in sorted(chosen)]


def calibration_sample(
    calibration: ProcessSet, n: int | None, evaluated: Sequence[ProcessItem], data_key: str
) -> tuple[list[ProcessItem], str]:
    """Items to choose the threshold on, and a note on how they relate to the evaluated ones.

    From the same file, the calibration items are the ones not evaluated
    when both classes remain (so the threshold is not fitted to the test
    items); otherwise the evaluated items themselves (calibrated F1 = oracle).
    Up to ``n`` items, balanced as far as the file allows.
    """
    if calibration.key != data_key:
        return balanced_sample(calibration.items, n, up_to=True), ""
    rest = balanced_sample(calibration.items, n, exclude={it.id for it in evaluated}, up_to=True)
    if any(it.has_error for it in rest) and any(not it.has_error for it in rest):
        return rest, "same file as the evaluation data, items disjoint from the evaluated ones"
    return list(evaluated), "same items as the evaluation data: the calibrated F1 is the oracle F1"


# ------------------------------------------------------------------ scoring ---
@dataclass
class ScoredItems:
    """Step scores of items (erroneous ones up to their first wrong step)."""

    items: list[ProcessItem]
    scores: list[list[float]]
    seconds: float

    @property
    def labels(self) -> list[int]:
        return [it.label for it in self.items]

    @property
    def steps(self) -> int:
        return sum(len(s) for s in self.scores)


def score_items(
    prm: RewardModel, items: Sequence[ProcessItem], on_progress: Callable[[int, int], None] | None = None
) -> ScoredItems:
    """Each item's step scores from ``prm``; ``on_progress(steps done, steps in all)`` after each item.

    Steps after the first error are not scored: no metric uses them, and a
    reward model scores step i from the steps before it, never after.
    """
    total = sum(len(it.judged_steps) for it in items)
    done = 0
    scores: list[list[float]] = []
    start = time.perf_counter()
    for it in items:
        steps = list(it.judged_steps)
        try:
            got = [float(s) for s in prm.score(it.problem, steps)]
        except SpecSearchError as exc:
            raise ProcessBenchError(f"scoring item {it.id}: {exc}") from exc
        if len(got) != len(steps) or not all(np.isfinite(got)):
            raise ProcessBenchError(f"scoring item {it.id}: the reward model returned {len(got)} scores "
                                    f"for {len(steps)} steps (or a non-finite score)")
        scores.append(got)
        done += len(steps)
        if on_progress is not None:
            on_progress(done, total)
    return ScoredItems(list(items), scores, time.perf_counter() - start)


# --------------------------------------------------------------- evaluation ---
@dataclass
class PRMEvaluation:
    """A reward model's ProcessBench numbers on one sample."""

    auroc: float | None
    calibrated: F1Result
    """F1 on the evaluated items at the threshold chosen on the calibration items."""
    oracle: F1Result
    """The best threshold on the evaluated items themselves (for reference)."""
    items: int
    items_erroneous: int
    steps: int
    seconds: float
    calibration_items: int
    good_scores: np.ndarray = field(repr=False)
    first_wrong_scores: np.ndarray = field(repr=False)
    score_min: float = 0.0
    score_max: float = 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "auroc": self.auroc,
            "f1": self.calibrated.f1,
            "f1_oracle": self.oracle.f1,
            "threshold": self.calibrated.threshold,
            "threshold_oracle": self.oracle.threshold,
            "accuracy_erroneous": self.calibrated.accuracy_erroneous,
            "accuracy_correct": self.calibrated.accuracy_correct,
            "items": self.items,
            "items_erroneous": self.items_erroneous,
            "items_correct": self.items - self.items_erroneous,
            "steps": self.steps,
            "steps_good": int(self.good_scores.size),
            "steps_first_wrong": int(self.first_wrong_scores.size),
            "seconds": self.seconds,
            "steps_per_second": self.steps_per_second,
            "score_min": self.score_min,
            "score_max": self.score_max,
            "calibration_items": self.calibration_items,
        }


def evaluate_scores(scored: ScoredItems, calibration: ScoredItems) -> PRMEvaluation:
    """Metrics of ``scored`` with the F1 threshold chosen on ``calibration``."""
    chosen = best_threshold(calibration.scores, calibration.labels)
    if chosen.f1 is None:
        raise ProcessBenchError("the calibration items need both erroneous and fully correct items")
    good, bad = step_classes(scored.scores, scored.labels)
    every = np.concatenate([np.asarray(s, dtype=float) for s in scored.scores])
    return PRMEvaluation(
        auroc=step_auroc(scored.scores, scored.labels),
        calibrated=processbench_f1(scored.scores, scored.labels, chosen.threshold),
        oracle=best_threshold(scored.scores, scored.labels),
        items=len(scored.items),
        items_erroneous=sum(it.has_error for it in scored.items),
        steps=scored.steps,
        seconds=scored.seconds,
        calibration_items=len(calibration.items),
        good_scores=good,
        first_wrong_scores=bad,
        score_min=float(every.min()),
        score_max=float(every.max()),
    )


def evaluate_prm(
    prm: RewardModel,
    items: Sequence[ProcessItem],
    calibration_items: Sequence[ProcessItem] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> PRMEvaluation:
    """Score ``items`` (and ``calibration_items``, default: ``items``) and compute the metrics.

    ``on_progress(phase, steps done, steps in all)`` with phase "calibrate"
    or "eval".  Calibration items that are the evaluated items are scored once.
    """
    def progress(phase: str) -> Callable[[int, int], None] | None:
        return None if on_progress is None else (lambda done, total: on_progress(phase, done, total))

    items = list(items)
    same = calibration_items is None or list(calibration_items) == items
    calibrated = None if same else score_items(prm, calibration_items, progress("calibrate"))
    scored = score_items(prm, items, progress("eval"))
    return evaluate_scores(scored, scored if calibrated is None else calibrated)

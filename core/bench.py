"""The search benchmark: every method on every problem, resumable, summarised.

:func:`run_benchmark` knows nothing about engines: it is handed a ``solve``
callable (problem, method) -> :class:`~specsearch.core.tree.SearchResult` and
does the bookkeeping:

* ``results.jsonl`` -- one JSON line per finished (problem, method), appended,
  flushed and fsync'ed, so killing the process loses at most the line being
  written.  Re-running with the same ``out_dir`` skips the pairs already there
  (resume); a torn last line is cut off and that pair runs again.  A pair whose
  recorded search was *cancelled*, or ran with another reward model than the
  one given (``prm``), is run again too (the newer line wins).  Each line
  records the reward model (``"prm"``: kind, model, head, arithmetic check).
* ``summary.json`` (method -> numbers, written atomically: accuracy, latency,
  the measured ``speedup_vs_ar``, the same per token of kept thoughts
  ``speedup_per_token`` (equal work), and the cost model's ``predicted_speedup``,
  ``ceiling_speedup`` and ``captured_fraction``), ``results.csv`` and
  ``plot.png`` (accuracy vs latency; time per phase); ``curve.png`` when a
  method ran at several values of one search option (``bench_variants``).
* ``trees/<id>__<method>.json`` -- each search's whole result (tree, steps,
  timings: what the TUI saves), written atomically, so a run can be inspected
  or its cost model re-fitted later.

Problems run in order and, for each problem, the methods in the order given, so
an interrupted benchmark still compares all methods on the same problems.
Exceptions raised by ``solve`` (or ``on_progress``) propagate; what was written
before stays valid for a resume.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specsearch.core.answers import extract_answer, is_equivalent
from specsearch.core.atomic import atomic_write_json, atomic_write_text
from specsearch.core.bench_variants import CURVE_FILE, parse_variant, write_curve
from specsearch.core.datasets import Problem
from specsearch.core.plots import two_panel_png
from specsearch.core.prm_info import prm_label, prm_of
from specsearch.core.tree import SearchResult

__all__ = [
    "BenchProgress",
    "BenchSummary",
    "MethodSummary",
    "format_table",
    "load_records",
    "make_record",
    "run_benchmark",
    "summarize",
    "write_plot",
]

log = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
TREES_DIR = "trees"
SUMMARY_FILE = "summary.json"
CSV_FILE = "results.csv"
PLOT_FILE = "plot.png"

# Display order of search phases (others follow alphabetically).
PHASE_ORDER = ("draft", "generate", "score", "regenerate", "select")

CSV_COLUMNS = (
    "id",
    "method",
    "correct",
    "answer",
    "reference",
    "latency_s",
    "thought_acceptance_rate",
    "token_acceptance_rate",
    "thoughts_accepted",
    "thoughts_rejected",
    "trial_drafts_accepted",
    "trial_drafts_rejected",
    "tokens_drafted",
    "tokens_accepted",
    "tokens_small",
    "tokens_large",
    "kept_tokens",
    "cancelled",
    "prm",  # the reward model's one-line label (core.prm_info.prm_label)
)


@dataclass(frozen=True)
class BenchProgress:
    """Reported after each (problem, method) pair, including ones skipped on resume."""

    done: int  # pairs finished so far (skipped ones included)
    total: int  # len(problems) * len(methods)
    problem_id: str
    method: str
    skipped: bool  # already in results.jsonl, not run again
    record: dict[str, Any]  # the results.jsonl line of this pair

    @property
    def correct(self) -> bool:
        return bool(self.record.get("correct"))

    @property
    def latency_s(self) -> float:
        return float(self.record.get("latency_s") or 0.0)


@dataclass
class MethodSummary:
    method: str
    n: int
    n_correct: int
    accuracy: float | None
    mean_latency_s: float | None
    speedup_vs_ar: float | None  # measured
    thought_acceptance_rate: float | None  # pooled: sum accepted / sum judged
    token_acceptance_rate: float | None  # pooled: sum accepted / sum drafted
    trial_acceptance_rate: float | None = None  # auto's trials (drafts judged, never kept), pooled
    mean_phase_seconds: dict[str, float] = field(default_factory=dict)
    mean_tokens_small: float | None = None
    mean_tokens_large: float | None = None
    n_cancelled: int = 0
    prm: dict[str, Any] | None = None  # the reward model of every record (None: unknown or mixed)
    # The cost model (core.cost_model), pooled over the records that have it: predicted ar
    # time / latency; predicted ar time / ceiling time (every draft accepted, scoring free);
    # and the measured speed-up's share of the ceiling.
    predicted_speedup: float | None = None
    ceiling_speedup: float | None = None
    captured_fraction: float | None = None
    # Measured per token of the thoughts each search kept (pooled over the problems ar has too):
    # the speed-up on equal work, which is what the cost model predicts, since it prices ar on the
    # search's own tree; speedup_vs_ar / this is what a shorter or longer tree than ar's added.
    speedup_per_token: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n_correct": self.n_correct,
            "accuracy": self.accuracy,
            "mean_latency_s": self.mean_latency_s,
            "speedup_vs_ar": self.speedup_vs_ar,
            "speedup_per_token": self.speedup_per_token,
            "predicted_speedup": self.predicted_speedup,
            "ceiling_speedup": self.ceiling_speedup,
            "captured_fraction": self.captured_fraction,
            "thought_acceptance_rate": self.thought_acceptance_rate,
            "token_acceptance_rate": self.token_acceptance_rate,
            "trial_acceptance_rate": self.trial_acceptance_rate,
            "mean_phase_seconds": dict(self.mean_phase_seconds),
            "mean_tokens_small": self.mean_tokens_small,
            "mean_tokens_large": self.mean_tokens_large,
            "n_cancelled": self.n_cancelled,
            "prm": dict(self.prm) if self.prm else None,
        }


@dataclass
class BenchSummary:
    methods: dict[str, MethodSummary]
    out_dir: Path | None = None
    ran: int = 0  # pairs run in this call
    skipped: int = 0  # pairs found in results.jsonl and not run again
    plot_path: Path | None = None  # None when matplotlib was unavailable
    curve_path: Path | None = None  # curve.png when a search option was swept (bench_variants)

    def __getitem__(self, method: str) -> MethodSummary:
        return self.methods[method]

    def __iter__(self):
        return iter(self.methods)

    def __len__(self) -> int:
        return len(self.methods)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The content of summary.json: method -> numbers."""
        return {name: m.to_dict() for name, m in self.methods.items()}


# --------------------------------------------------------------------------- records


def make_record(problem: Problem, method: str, result: SearchResult,
                prm: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The results.jsonl line of one finished search; ``prm`` (else the one the
    search recorded in its config) describes its reward model."""
    stats = result.stats
    answer = result.answer
    if answer is None and result.solution:
        answer = extract_answer(result.solution)
    return {
        "id": problem.id,
        "method": method,
        "correct": bool(is_equivalent(answer, problem.answer)),
        "answer": answer,
        "reference": problem.answer,
        "latency_s": float(stats.wall_seconds),
        "thought_acceptance_rate": stats.thought_acceptance_rate,
        "token_acceptance_rate": stats.token_acceptance_rate,
        "thoughts_accepted": int(stats.thoughts_accepted),
        "thoughts_rejected": int(stats.thoughts_rejected),
        "trial_drafts_accepted": int(stats.trial_drafts_accepted),  # auto's trials: judged, never kept
        "trial_drafts_rejected": int(stats.trial_drafts_rejected),
        "tokens_drafted": int(stats.tokens_drafted),
        "tokens_accepted": int(stats.tokens_accepted),
        "tokens_small": int(stats.tokens.get("small", 0)),
        "tokens_large": int(stats.tokens.get("large", 0)),
        "phase_seconds": {k: float(v) for k, v in stats.phase_seconds.items()},
        "model_seconds": {k: float(v) for k, v in stats.model_seconds.items()},  # generation time per model role
        "remote": {role: dict(r) for role, r in stats.remote.items()},  # served models: requests, seconds, split
        # tokens of the thoughts the search kept (not rejected or trial drafts): per token, a speed-up
        # compares equal work, which is what the cost model predicts
        "kept_tokens": sum(n.n_tokens for n in result.nodes if n.kept),
        "predicted_ar_s": stats.predicted_ar_seconds,  # the cost model's (core.cost_model)
        "ceiling_s": stats.ceiling_seconds,
        "predicted_speedup": stats.predicted_speedup,
        "cancelled": bool(result.cancelled),
        "search": result.search,  # the strategy (a METHOD@search=... label or --search)
        "prm": dict(prm) if prm else prm_of(result.config),
    }


def tree_path(out_dir: Path, problem_id: str, method: str) -> Path:
    """Where a benchmark keeps one search's whole result (names made file-safe)."""
    name = re.sub(r"[^A-Za-z0-9._=-]+", "_", f"{problem_id}__{method}")
    return out_dir / TREES_DIR / f"{name}.json"


def load_records(path: Path, repair: bool = True) -> list[dict[str, Any]]:
    """The valid lines of a results.jsonl file (file order).

    A last line without its newline was torn by a kill; with ``repair`` the file
    is truncated to the last complete line so appending continues cleanly.
    Complete lines that are not valid records are skipped with a warning.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n") + 1  # 0 when there is no complete line
    if end < len(data):
        log.warning("%s: dropping a torn last line (%d bytes)", path, len(data) - end)
        if repair:
            with open(path, "r+b") as fh:
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())
        data = data[:end]
    records: list[dict[str, Any]] = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.warning("%s, line %d: not valid JSON, ignored", path, lineno)
            continue
        if not isinstance(rec, dict) or "id" not in rec or "method" not in rec:
            log.warning("%s, line %d: not a result record, ignored", path, lineno)
            continue
        rec["id"] = str(rec["id"])
        records.append(rec)
    return records


def _append_line(fh, record: Mapping[str, Any]) -> None:
    fh.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    fh.flush()
    os.fsync(fh.fileno())


# --------------------------------------------------------------------------- summary


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _phase_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [p for p in PHASE_ORDER if p in names] + sorted(names - set(PHASE_ORDER))


def summarize(
    records: Iterable[Mapping[str, Any]], methods: list[str] | None = None
) -> dict[str, MethodSummary]:
    """Per-method numbers from result records (the last record of each (id, method) wins).

    ``speedup_vs_ar`` for a method is mean ar latency / mean method latency over
    the problems both have records for (None without ar records); ar records
    among ``records`` count as the baseline even when "ar" is not in ``methods``.
    Acceptance rates are pooled over problems (sum accepted / sum judged), and so
    are the cost model's speed-ups (see :func:`_predicted`).
    """
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for rec in records:
        latest[(str(rec["id"]), str(rec["method"]))] = rec
    by_method: dict[str, list[Mapping[str, Any]]] = {}
    for (_, method), rec in latest.items():
        by_method.setdefault(method, []).append(rec)
    order = list(methods) if methods is not None else sorted(by_method)
    ar_records = {str(r["id"]): r for r in by_method.get("ar", [])}
    ar_latency = {i: float(r.get("latency_s") or 0.0) for i, r in ar_records.items()}

    out: dict[str, MethodSummary] = {}
    for method in order:
        recs = by_method.get(method, [])
        n = len(recs)
        n_correct = sum(1 for r in recs if r.get("correct"))
        latencies = [float(r.get("latency_s") or 0.0) for r in recs]

        speedup: float | None = None
        common = [r for r in recs if str(r["id"]) in ar_latency]
        if common:
            ar_mean = _mean([ar_latency[str(r["id"])] for r in common])
            m_mean = _mean([float(r.get("latency_s") or 0.0) for r in common])
            if ar_mean is not None and m_mean and m_mean > 0:
                speedup = ar_mean / m_mean

        accepted = sum(int(r.get("thoughts_accepted") or 0) for r in recs)
        judged = accepted + sum(int(r.get("thoughts_rejected") or 0) for r in recs)
        trial_accepted = sum(int(r.get("trial_drafts_accepted") or 0) for r in recs)
        trial_judged = trial_accepted + sum(int(r.get("trial_drafts_rejected") or 0) for r in recs)
        tok_drafted = sum(int(r.get("tokens_drafted") or 0) for r in recs)
        tok_accepted = sum(int(r.get("tokens_accepted") or 0) for r in recs)

        phase_totals: dict[str, float] = {}
        for r in recs:
            for phase, secs in (r.get("phase_seconds") or {}).items():
                phase_totals[phase] = phase_totals.get(phase, 0.0) + float(secs)
        mean_phases = {p: phase_totals[p] / n for p in _phase_order(phase_totals)} if n else {}

        out[method] = MethodSummary(
            method=method,
            n=n,
            n_correct=n_correct,
            accuracy=n_correct / n if n else None,
            mean_latency_s=_mean(latencies),
            speedup_vs_ar=speedup,
            thought_acceptance_rate=accepted / judged if judged else None,
            token_acceptance_rate=tok_accepted / tok_drafted if tok_drafted else None,
            trial_acceptance_rate=trial_accepted / trial_judged if trial_judged else None,
            mean_phase_seconds=mean_phases,
            mean_tokens_small=_mean([float(r.get("tokens_small") or 0) for r in recs]),
            mean_tokens_large=_mean([float(r.get("tokens_large") or 0) for r in recs]),
            n_cancelled=sum(1 for r in recs if r.get("cancelled")),
            prm=_common_prm(recs),
            speedup_per_token=_speedup_per_token(common, ar_records),
            **_predicted(recs, speedup),
        )
    return out


def _speedup_per_token(records: list[Mapping[str, Any]], ar: Mapping[str, Mapping[str, Any]]) -> float | None:
    """ar's seconds per kept token / the method's, pooled over the problems both recorded kept
    tokens for (records older than ``kept_tokens`` have none)."""
    pairs = [(ar[str(r["id"])], r) for r in records if r.get("kept_tokens") and ar[str(r["id"])].get("kept_tokens")]
    if not pairs:
        return None
    def per_token(recs: list[Mapping[str, Any]]) -> float:
        return sum(float(r.get("latency_s") or 0.0) for r in recs) / sum(int(r["kept_tokens"]) for r in recs)
    method_rate = per_token([m for _, m in pairs])
    return per_token([a for a, _ in pairs]) / method_rate if method_rate > 0 else None


def _predicted(records: list[Mapping[str, Any]], measured: float | None) -> dict[str, float | None]:
    """predicted_speedup = sum predicted ar time / sum latency, ceiling_speedup = sum predicted ar
    time / sum ceiling time (records that have them), captured_fraction = measured / ceiling."""
    have = [r for r in records if r.get("predicted_ar_s") is not None]
    predicted_ar = sum(float(r["predicted_ar_s"]) for r in have)
    latency = sum(float(r.get("latency_s") or 0.0) for r in have)
    with_ceiling = [r for r in have if r.get("ceiling_s")]
    ceiling_time = sum(float(r["ceiling_s"]) for r in with_ceiling)
    ceiling = sum(float(r["predicted_ar_s"]) for r in with_ceiling) / ceiling_time if ceiling_time > 0 else None
    return {
        "predicted_speedup": predicted_ar / latency if latency > 0 else None,
        "ceiling_speedup": ceiling,
        "captured_fraction": measured / ceiling if measured is not None and ceiling else None,
    }


def _common_prm(records: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The reward model all ``records`` share, or None (none recorded, or several)."""
    seen = {json.dumps(r.get("prm"), sort_keys=True) for r in records}
    return json.loads(seen.pop()) if len(seen) == 1 else None


# --------------------------------------------------------------------------- outputs


def _write_csv(path: Path, records: list[Mapping[str, Any]]) -> None:
    phases = _phase_order({p for r in records for p in (r.get("phase_seconds") or {})})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(CSV_COLUMNS) + [f"{p}_s" for p in phases])
    for r in records:
        row = ["" if r.get(c) is None else r.get(c) for c in CSV_COLUMNS]
        row[CSV_COLUMNS.index("prm")] = prm_label(r["prm"]) if r.get("prm") else ""
        ph = r.get("phase_seconds") or {}
        row += [ph.get(p, 0.0) for p in phases]
        writer.writerow(row)
    atomic_write_text(path, buf.getvalue())


def write_plot(methods: Mapping[str, MethodSummary], path: Path) -> Path | None:
    """plot.png: accuracy vs mean latency, and mean time per phase (stacked).
    None (and a warning) when matplotlib is not installed."""
    names = [m for m, s in methods.items() if s.n > 0]

    def draw(ax1, ax2) -> None:
        for name in names:
            s = methods[name]
            x, y = s.mean_latency_s or 0.0, 100.0 * (s.accuracy or 0.0)
            ax1.scatter([x], [y], s=60, zorder=3)
            ax1.annotate(name, (x, y), textcoords="offset points", xytext=(6, 6))
        ax1.set_xlabel("mean latency per problem (s)")
        ax1.set_ylabel("accuracy (%)")
        ax1.set_title("Accuracy vs latency")
        ax1.set_ylim(-5, 105)
        max_x = max((methods[n].mean_latency_s or 0.0 for n in names), default=0.0)
        ax1.set_xlim(0, max_x * 1.2 if max_x > 0 else 1.0)
        ax1.grid(True, alpha=0.3)

        phases = _phase_order({p for n in names for p in methods[n].mean_phase_seconds})
        bottoms = [0.0] * len(names)
        xs = list(range(len(names)))
        for phase in phases:
            heights = [methods[n].mean_phase_seconds.get(phase, 0.0) for n in names]
            ax2.bar(xs, heights, bottom=bottoms, label=phase)
            bottoms = [b + h for b, h in zip(bottoms, heights)]
        ax2.set_xticks(xs)
        ax2.set_xticklabels(names)
        ax2.set_ylabel("mean seconds per problem")
        ax2.set_title("Time by phase")
        if phases:
            ax2.legend(fontsize="small")
        ax2.grid(True, axis="y", alpha=0.3)

    return two_panel_png(path, draw)


# --------------------------------------------------------------------------- runner


def run_benchmark(
    problems: list[Problem],
    methods: list[str],
    solve: Callable[[Problem, str], SearchResult],
    out_dir: str | os.PathLike[str],
    on_progress: Callable[[BenchProgress], None] | None = None,
    prm: Mapping[str, Any] | None = None,
) -> BenchSummary:
    """Run every method on every problem, appending to ``out_dir/results.jsonl``.

    Pairs already recorded there (and not cancelled) are skipped -- unless
    ``prm`` (the reward model these searches use, ``Solver.prm_description()``)
    is given and differs from the one recorded: then they run again.  Returns
    the summary of these problems and methods and writes summary.json,
    results.csv and plot.png.
    """
    if not methods:
        raise ValueError("no methods to benchmark")
    if len(set(methods)) != len(methods):
        raise ValueError(f"duplicate methods in {methods}")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError("problem ids must be unique (they key the resume)")

    prm = dict(prm) if prm else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS_FILE

    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in load_records(results_path):
        latest[(rec["id"], str(rec["method"]))] = rec

    total = len(problems) * len(methods)
    done = ran = skipped = 0
    with open(results_path, "ab") as fh:
        for problem in problems:
            for method in methods:
                key = (problem.id, method)
                prev = latest.get(key)
                if prev is not None and not prev.get("cancelled") and (prm is None or prev.get("prm") == prm):
                    done += 1
                    skipped += 1
                    if on_progress is not None:
                        on_progress(BenchProgress(done, total, problem.id, method, True, prev))
                    continue
                result = solve(problem, method)
                record = make_record(problem, method, result, prm)
                atomic_write_json(tree_path(out, problem.id, method), _json_safe(result.to_dict()))
                _append_line(fh, record)
                latest[key] = record
                done += 1
                ran += 1
                if on_progress is not None:
                    on_progress(BenchProgress(done, total, problem.id, method, False, record))

    # The summary covers exactly these problems and methods (results.jsonl may
    # hold more from earlier runs with other settings).
    scope = [latest[(p.id, m)] for p in problems for m in methods if (p.id, m) in latest]
    # An ar baseline recorded earlier in this out_dir still gives the speed-up.
    baseline = [] if "ar" in methods else [latest[(p.id, "ar")] for p in problems if (p.id, "ar") in latest]
    method_summaries = summarize(scope + baseline, methods)
    summary = BenchSummary(methods=method_summaries, out_dir=out, ran=ran, skipped=skipped)
    atomic_write_json(out / SUMMARY_FILE, _json_safe(summary.to_dict()))
    _write_csv(out / CSV_FILE, scope)
    summary.plot_path = write_plot(method_summaries, out / PLOT_FILE)
    summary.curve_path = write_curve(_curve_summaries(problems, methods, latest, method_summaries), out / CURVE_FILE)
    return summary


def _curve_summaries(problems: list[Problem], methods: list[str], latest: Mapping[tuple[str, str], Mapping[str, Any]],
                     ran: dict[str, MethodSummary]) -> dict[str, MethodSummary]:
    """What curve.png draws: these methods, plus ar and each variant's plain base
    method as recorded earlier in this out_dir for the same problems."""
    extra = ["ar"] + [parse_variant(m).method for m in methods]
    extra = [m for m in dict.fromkeys(extra) if m not in ran]
    earlier = [latest[(p.id, m)] for p in problems for m in ["ar"] + extra if (p.id, m) in latest]
    return {**summarize(earlier, extra), **ran}


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None so summary.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# --------------------------------------------------------------------------- table


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100.0 * value:.1f}%"
    if kind == "sec":
        return f"{value:.2f} s"
    if kind == "x":
        return f"{value:.2f}x"
    return str(value)


def format_table(summary: BenchSummary | Mapping[str, Any]) -> str:
    """A fixed-width text table of a summary (a BenchSummary or summary.json's dict),
    under a line naming the reward model when the records say which it was."""
    if isinstance(summary, BenchSummary):
        rows_in = {m: s.to_dict() for m, s in summary.methods.items()}
    else:
        rows_in = {
            m: (s.to_dict() if isinstance(s, MethodSummary) else dict(s)) for m, s in summary.items()
        }
    header = ("method", "n", "accuracy", "mean latency", "speed-up vs ar", "per token", "predicted", "ceiling",
              "captured",
              "thought acc.", "token acc.")
    trials = any(s.get("trial_acceptance_rate") is not None for s in rows_in.values())
    if trials:  # auto's trials: a column only where some method made them
        header += ("trial acc.",)
    rows = [header]
    for method, s in rows_in.items():
        rows.append(
            (
                str(method),
                str(s.get("n", 0)),
                _fmt(s.get("accuracy"), "pct"),
                _fmt(s.get("mean_latency_s"), "sec"),
                _fmt(s.get("speedup_vs_ar"), "x"),
                _fmt(s.get("speedup_per_token"), "x"),
                _fmt(s.get("predicted_speedup"), "x"),
                _fmt(s.get("ceiling_speedup"), "x"),
                _fmt(s.get("captured_fraction"), "pct"),
                _fmt(s.get("thought_acceptance_rate"), "pct"),
                _fmt(s.get("token_acceptance_rate"), "pct"),
            ) + ((_fmt(s.get("trial_acceptance_rate"), "pct"),) if trials else ())
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def line(r: tuple[str, ...]) -> str:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    sep = "  ".join("-" * w for w in widths)
    labels = list(dict.fromkeys(prm_label(s["prm"]) for s in rows_in.values() if s.get("prm")))
    heading = [f"reward model: {'; '.join(labels)}"] if labels else []
    return "\n".join(heading + [line(rows[0]), sep] + [line(r) for r in rows[1:]])

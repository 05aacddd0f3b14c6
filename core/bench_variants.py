"""Method variants in a benchmark, and the curve they draw.

A benchmark method may carry one search option of its own:
``specsearch@threshold_margin=0.01`` is specsearch with that SearchConfig field
changed.  The label is what results.jsonl and summary.json key it by, so
several variants share one results file -- and one ``ar`` baseline -- and
resume like plain methods.  ``--sweep threshold_margin=0,0.01,0.02`` expands to
such labels.

When one base method appears with two or more values of a field, ``curve.png``
shows what the field trades: accuracy and speed-up against thought acceptance,
one point per value, beside ar's accuracy (the quality a method should keep).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specsearch.core.config import SearchConfig, implied_options, search_options
from specsearch.core.plots import two_panel_png


CURVE_FILE = "curve.png"
SEP = "@"


@dataclass(frozen=True)
class Variant:
    """A benchmark label split into its base method and SearchConfig overrides."""

    label: str
    method: str
    field: str | None = None
    value: Any = None

    def overrides(self) -> dict[str, Any]:
        return {} if self.field is None else {self.field: self.value}

    def apply(self, config: SearchConfig) -> SearchConfig:
        # implied: a fixed_beta asks for the fixed threshold, as --fixed-beta does
        return dataclasses.replace(config, **implied_options(self.overrides()))


def _kinds() -> dict[str, type]:
    """SearchConfig field -> the type a typed-in value becomes (core.config's options)."""
    return {o.name: o.kind for o in search_options()}


def _convert(field: str, text: str) -> Any:
    kind = _kinds()[field]
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{field} takes a number, not {text!r}") from None
    if kind is not str:
        raise ValueError(f"{field} cannot be set from a label")
    return text  # text and choice fields: SearchConfig validates the value


def _format_value(value: Any) -> str:
    return repr(value) if isinstance(value, float) and repr(value) != str(value) else str(value)


def parse_variant(label: str) -> Variant:
    """``"specsearch@threshold_margin=0.01"`` -> Variant(method="specsearch", ...).

    Raises ValueError (one line, for the CLI) on an unknown field or a bad value;
    the base method is checked by the caller, which knows the registry.
    """
    label = label.strip()
    if SEP not in label:
        return Variant(label, label)
    method, _, assignment = label.partition(SEP)
    field, eq, text = assignment.partition("=")
    field = field.strip().replace("-", "_")
    if not eq or not field or not text.strip():
        raise ValueError(f"{label!r}: a variant is METHOD{SEP}FIELD=VALUE, e.g. specsearch{SEP}threshold_margin=0.01")
    if field not in _kinds() or field == "method":
        raise ValueError(f"{label!r}: {field!r} is not a search option")
    value = _convert(field, text.strip())
    SearchConfig(**{field: value})  # its own checks (ranges) apply to the value
    canonical = f"{method.strip()}{SEP}{field}={_format_value(value)}"
    return Variant(canonical, method.strip(), field, value)


def expand_sweep(sweep: str, method: str = "specsearch") -> list[str]:
    """``"threshold_margin=0,0.01"`` -> the variant labels of ``method`` at those values."""
    field, eq, values = sweep.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not eq or not items:
        raise ValueError(f"--sweep {sweep!r}: give FIELD=V1,V2,..., e.g. threshold_margin=0,0.01,0.02")
    return [parse_variant(f"{method}{SEP}{field.strip()}={v}").label for v in items]


def curve_series(summaries: Mapping[str, Any]) -> dict[tuple[str, str], list[tuple[Any, Any]]]:
    """(base method, field) -> [(value, summary)] sorted by value, for every field
    that takes two or more values; the plain base method counts as the field's default."""
    defaults = SearchConfig()
    groups: dict[tuple[str, str], dict[Any, Any]] = {}
    for label in summaries:
        v = parse_variant(label)
        if v.field is not None:
            groups.setdefault((v.method, v.field), {})[v.value] = summaries[label]
    for (method, field), points in groups.items():
        if method in summaries:
            points.setdefault(getattr(defaults, field), summaries[method])
    return {k: sorted(p.items(), key=lambda kv: kv[0]) for k, p in groups.items() if len(p) >= 2}


def write_curve(summaries: Mapping[str, Any], path: Path) -> Path | None:
    """curve.png: per swept field, accuracy and speed-up vs ar against thought
    acceptance (values annotated), with ar's accuracy and the ar - 2 points line.
    ``summaries``: label -> MethodSummary.  None when nothing was swept (or
    matplotlib is missing)."""
    series = curve_series(summaries)
    if not series:
        return None

    def draw(ax_acc, ax_speed) -> None:
        ar = summaries.get("ar")
        if ar is not None and ar.accuracy is not None:
            acc = 100.0 * ar.accuracy
            ax_acc.axhline(acc, color="grey", linestyle="--", label=f"ar {acc:.0f} %")
            ax_acc.axhline(acc - 2, color="grey", linestyle=":", label="ar − 2 points")
        ax_speed.axhline(1.0, color="grey", linestyle="--", label="ar speed")
        for (method, field), points in series.items():
            xs = [100.0 * (s.thought_acceptance_rate or 0.0) for _, s in points]
            accs = [100.0 * (s.accuracy or 0.0) for _, s in points]
            speeds = [s.speedup_vs_ar or 0.0 for _, s in points]
            name = f"{method}, {field}"
            ax_acc.plot(xs, accs, marker="o", label=name)
            ax_speed.plot(xs, speeds, marker="o", label=name)
            for i, ((value, _), x, a, sp) in enumerate(zip(points, xs, accs, speeds)):
                # neighbouring values often land close together: labels alternate above and below
                offset = (5, 5) if i % 2 == 0 else (5, -12)
                ax_acc.annotate(_format_value(value), (x, a), textcoords="offset points", xytext=offset,
                                fontsize="small")
                ax_speed.annotate(_format_value(value), (x, sp), textcoords="offset points", xytext=offset,
                                  fontsize="small")
        ax_acc.set(xlabel="thought acceptance (%)", ylabel="accuracy (%)", title="Accuracy vs acceptance",
                   ylim=(-5, 105))
        ax_speed.set(xlabel="thought acceptance (%)", ylabel="speed-up vs ar (×)", title="Speed-up vs acceptance")
        for ax in (ax_acc, ax_speed):
            ax.set_xlim(-5, 105)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")

    return two_panel_png(path, draw)

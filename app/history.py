"""Conversation history: one JSON file per conversation, written atomically.

A conversation is saved as it happens (when a question is asked, after each
search step, when the search ends), so a crash loses at most the last step.
Export to Markdown and JSON.  No Textual imports here.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from specsearch.core.atomic import atomic_write_json, atomic_write_text
from specsearch.core.prm_info import prm_label, prm_of
from specsearch.models.locations import data_dir, history_dir

from .formatting import FATE_SYMBOLS, FLAGGED, node_symbols, one_line

Mode = Literal["chat", "race", "tutor"]
Status = Literal["running", "done", "cancelled", "error"]


@dataclass
class Exchange:
    """One question and what answered it."""

    question: str
    mode: Mode = "chat"
    settings: dict[str, Any] = field(default_factory=dict)  # Settings.to_dict() used for it
    runs: list[dict[str, Any]] = field(default_factory=list)  # SearchResult.to_dict() per search, in order
    answer: str | None = None
    stats: dict[str, Any] | None = None  # SearchStats.to_dict() of the main (last) run
    status: Status = "running"
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    tutor: list[dict[str, Any]] = field(default_factory=list)  # tutoring turns: kind, text, verdict

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Exchange":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Conversation:
    id: str
    created_at: float
    updated_at: float
    exchanges: list[Exchange] = field(default_factory=list)

    @classmethod
    def new(cls) -> "Conversation":
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        return cls(f"{stamp}-{secrets.token_hex(3)}", now, now)

    @property
    def title(self) -> str:
        return one_line(self.exchanges[0].question, 70) if self.exchanges else "(empty)"

    @property
    def mode(self) -> str:
        return self.exchanges[-1].mode if self.exchanges else "chat"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "title": self.title,
            "exchanges": [e.to_dict() for e in self.exchanges],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Conversation":
        return cls(
            id=str(data["id"]),
            created_at=float(data.get("created_at", 0.0)),
            updated_at=float(data.get("updated_at", 0.0)),
            exchanges=[Exchange.from_dict(e) for e in data.get("exchanges", [])],
        )


@dataclass(frozen=True)
class Summary:
    """What the history list shows, read without keeping whole trees around."""

    id: str
    title: str
    question: str  # the last question, in full
    mode: str
    updated_at: float
    n_exchanges: int
    answer: str | None
    status: str


_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class HistoryStore:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or history_dir()

    def path(self, conv_id: str) -> Path:
        if not _ID_RE.match(conv_id):
            raise ValueError(f"bad conversation id {conv_id!r}")
        return self.directory / f"{conv_id}.json"

    def save(self, conv: Conversation) -> Path:
        conv.updated_at = time.time()
        path = self.path(conv.id)
        atomic_write_json(path, conv.to_dict())
        return path

    def load(self, conv_id: str) -> Conversation:
        return Conversation.from_dict(json.loads(self.path(conv_id).read_text(encoding="utf-8")))

    def delete(self, conv_id: str) -> None:
        self.path(conv_id).unlink(missing_ok=True)

    def list(self) -> list[Summary]:
        """Newest first; unreadable files are skipped."""
        out: list[Summary] = []
        for path in self.directory.glob("*.json"):
            try:
                conv = Conversation.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            last = conv.exchanges[-1] if conv.exchanges else None
            out.append(Summary(conv.id, conv.title, last.question if last else "", conv.mode, conv.updated_at,
                               len(conv.exchanges),
                               last.answer if last else None, last.status if last else "done"))
        out.sort(key=lambda s: (s.updated_at, s.id), reverse=True)
        return out

    # ----------------------------------------------------------- export ---
    def export(self, conv: Conversation, fmt: Literal["md", "json"], directory: Path | None = None) -> Path:
        directory = directory or data_dir() / "exports"
        path = directory / f"{conv.id}.{fmt}"
        text = to_markdown(conv) if fmt == "md" else json.dumps(conv.to_dict(), indent=2, ensure_ascii=False) + "\n"
        atomic_write_text(path, text)
        return path


def _fmt_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def to_markdown(conv: Conversation) -> str:
    lines = [f"# {conv.title}", "", f"*specsearch conversation {conv.id}, {_fmt_time(conv.created_at)}*", ""]
    for i, ex in enumerate(conv.exchanges, 1):
        lines += [f"## {i}. {one_line(ex.question, 200)}", ""]
        if ex.mode != "chat":
            lines += [f"Mode: {ex.mode}", ""]
        lines += ["> " + line for line in ex.question.splitlines()] + [""]
        for run in ex.runs:
            lines += _run_markdown(run, len(ex.runs) > 1)
        for turn in ex.tutor:
            lines.append(_turn_markdown(turn))
        if ex.tutor:
            lines.append("")
        if ex.error:
            lines += [f"**Error:** {ex.error}", ""]
        if ex.answer is not None:
            lines += [f"**Answer:** {ex.answer}", ""]
        elif ex.status != "running":
            lines += [f"*No final answer ({ex.status}).*", ""]
    return "\n".join(lines).rstrip() + "\n"


def _turn_markdown(turn: dict[str, Any]) -> str:
    """One tutoring turn; a step or hint the arithmetic check rejected says which equation is off."""
    verdict = turn.get("verdict") or ""
    wrong = "; ".join(turn.get("arithmetic") or [])
    if wrong and wrong not in verdict:
        verdict = f"{FLAGGED} {wrong}" + (f"; {verdict}" if verdict else "")
    elif wrong:
        verdict = f"{FLAGGED} {verdict}"
    verdict = f" — {verdict}" if verdict else ""
    return f"- **{turn.get('kind', '?')}**: {one_line(turn.get('text', ''), 300)}{verdict}"


def _run_markdown(run: dict[str, Any], heading: bool) -> list[str]:
    lines: list[str] = []
    if heading:
        lines += [f"### {run.get('method', '?')}", ""]
    prm = prm_of(run.get("config"))
    if prm is not None:
        lines += [f"Reward model: {prm_label(prm)}", ""]
    nodes = {n["id"]: n for n in run.get("nodes", [])}
    path: list[dict[str, Any]] = []
    node_id = run.get("best_leaf_id")
    while node_id is not None and node_id in nodes:
        path.append(nodes[node_id])
        node_id = nodes[node_id]["parent_id"]
    if run.get("solution"):
        lines += [run["solution"].strip(), ""]
    if path:
        lines += ["| step | thought | source | score | β | fate |", "|---|---|---|---|---|---|"]
        for n in reversed(path):
            score = f"{n['score']:.2f}" if n.get("score") is not None else ""
            beta = f"{n['beta']:.2f}" if n.get("beta") is not None else ""
            text = one_line(n["text"], 80).replace("|", "\\|")
            flag = f" {FLAGGED}" if n.get("flag") else ""
            lines.append(f"| {n['depth']} | {text} | {n['source']} | {score}{flag} | {beta} | "
                         f"{node_symbols(n)} {n['fate']} |")
        lines.append("")
    flagged = [n for n in run.get("nodes", []) if n.get("flag")]
    if flagged:  # every thought the check caught, kept in the solution or not
        lines += ["Arithmetic check:", ""]
        lines += [f"- {FLAGGED} step {n['depth']}, #{n['id']} ({n['source']}, {n['fate']}): {n['flag']}"
                  for n in flagged]
        lines.append("")
    stats = run.get("stats") or {}
    if stats:
        parts = [f"{stats.get('wall_seconds', 0):.1f} s"]
        for model, count in (stats.get("tokens") or {}).items():
            if count:
                parts.append(f"{model} {count} tokens")
        rate = stats.get("thought_acceptance_rate")
        if rate is not None:
            parts.append(f"thoughts accepted {rate:.0%}")
        lines += [f"Stats ({run.get('method')}): " + ", ".join(parts) + ("; cancelled" if run.get("cancelled") else ""), ""]
    legend = ", ".join(f"{sym} {name}" for name, sym in FATE_SYMBOLS.items())
    lines += [f"<sub>{legend}</sub>", ""] if path else []
    return lines

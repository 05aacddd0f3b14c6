"""Conversation history: one JSON file per conversation, written atomically.

A conversation is saved as it happens (when a question is asked, after each
search step, when the search ends), so a crash loses at most the last step.
Each exchange keeps its searches as core :class:`SearchResult` records (read
back with ``SearchResult.from_dict``).  A file that is not a conversation
(bad JSON, or a null where the question belongs) is set aside when the folder
is listed (app/json_files.py), and the listing says so.  Export to Markdown
and JSON.  No Textual imports here: the app calls this module from worker threads.
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
from specsearch.core.text import one_line
from specsearch.core.tree import SearchResult, SearchStats
from specsearch.models.locations import data_dir, history_dir

from .formatting import FATE_SYMBOLS, FLAGGED, node_symbols
from .json_files import SetAside, check_shape, read_or_set_aside

Mode = Literal["chat", "race", "tutor"]
Status = Literal["running", "done", "cancelled", "error"]


@dataclass
class Exchange:
    """One question and what answered it."""

    question: str
    mode: Mode = "chat"
    settings: dict[str, Any] = field(default_factory=dict)  # Settings.to_dict() used for it
    runs: list[SearchResult] = field(default_factory=list)  # every search on it, in order; the main one last
    answer: str | None = None
    stats: SearchStats | None = None  # of the main (last) run
    status: Status = "running"
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    tutor: list[dict[str, Any]] = field(default_factory=list)  # tutoring turns: kind, text, verdict
    # the last run is a snapshot of a search that had not returned (saved mid-search, or it failed):
    # it has no chosen answer
    partial: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["runs"] = [r.to_dict() for r in self.runs]
        out["stats"] = self.stats.to_dict() if self.stats is not None else None
        out["settings"], out["tutor"] = dict(self.settings), [dict(t) for t in self.tutor]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Exchange":
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        runs = data.get("runs") or []
        known["runs"] = [SearchResult.from_dict(r) for r in runs]
        known["stats"] = SearchStats.from_dict(data["stats"]) if data.get("stats") else None
        # files written before the flag: the partial run itself said so
        known["partial"] = bool(data.get("partial") or any(r.get("partial") for r in runs))
        return cls(**known)


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
    def from_dict(cls, data: Any) -> "Conversation":
        """A conversation from parsed JSON; ValueError naming the first field of the wrong shape."""
        check_shape(data, cls)
        try:
            conv = cls(
                id=str(data["id"]),
                created_at=float(data.get("created_at", 0.0)),
                updated_at=float(data.get("updated_at", 0.0)),
                exchanges=[Exchange.from_dict(e) for e in data.get("exchanges", [])],
            )
        except KeyError as exc:
            raise ValueError(f"missing field {exc}") from None
        except TypeError as exc:  # a saved thought missing a field, or with one this version does not know
            raise ValueError(str(exc)) from None
        if not _ID_RE.match(conv.id):
            raise ValueError(f"id: bad conversation id {conv.id!r}")
        return conv


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


@dataclass(frozen=True)
class Listing:
    """The history folder as read by :meth:`HistoryStore.scan`."""

    summaries: list[Summary]  # newest first
    set_aside: list[str]  # one notice per file set aside while listing


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
        return self.write(conv.id, conv.to_dict())

    def write(self, conv_id: str, data: dict[str, Any]) -> Path:
        """Write a conversation already serialised (``Conversation.to_dict()``)."""
        path = self.path(conv_id)
        atomic_write_json(path, data)
        return path

    def load(self, conv_id: str) -> Conversation:
        """ValueError when the file is not a conversation (it stays where it is)."""
        return Conversation.from_dict(json.loads(self.path(conv_id).read_text(encoding="utf-8")))

    def delete(self, conv_id: str) -> None:
        self.path(conv_id).unlink(missing_ok=True)

    def list(self) -> list[Summary]:
        """Newest first (see :meth:`scan`)."""
        return self.scan().summaries

    def scan(self) -> Listing:
        """Every conversation, newest first.  A file that is not JSON or not a conversation is
        set aside (``<name>.corrupt-<time>``) and named in the listing's notices; a file that
        cannot be read is skipped."""
        out: list[Summary] = []
        notices: list[str] = []
        for path in self.directory.glob("*.json"):
            try:
                conv = read_or_set_aside(path, Conversation.from_dict)
            except SetAside as exc:
                notices.append(str(exc))
                continue
            except OSError:
                continue
            last = conv.exchanges[-1] if conv.exchanges else None
            out.append(Summary(conv.id, conv.title, last.question if last else "", conv.mode, conv.updated_at,
                               len(conv.exchanges),
                               last.answer if last else None, last.status if last else "done"))
        out.sort(key=lambda s: (s.updated_at, s.id), reverse=True)
        return Listing(out, notices)

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


def _run_markdown(run: SearchResult, heading: bool) -> list[str]:
    lines: list[str] = []
    if heading:
        lines += [f"### {run.method or '?'}", ""]
    prm = prm_of(run.config)
    if prm is not None:
        lines += [f"Reward model: {prm_label(prm)}", ""]
    path = run.path(run.best_leaf_id)
    if run.solution:
        lines += [run.solution.strip(), ""]
    if path:
        lines += ["| step | thought | source | score | β | fate |", "|---|---|---|---|---|---|"]
        for n in path:
            score = f"{n.score:.2f}" if n.score is not None else ""
            beta = f"{n.beta:.2f}" if n.beta is not None else ""
            text = one_line(n.text, 80).replace("|", "\\|")
            flag = f" {FLAGGED}" if n.flag else ""
            lines.append(f"| {n.depth} | {text} | {n.source} | {score}{flag} | {beta} | "
                         f"{node_symbols(n)} {n.fate} |")
        lines.append("")
    flagged = [n for n in run.nodes if n.flag]
    if flagged:  # every thought the check caught, kept in the solution or not
        lines += ["Arithmetic check:", ""]
        lines += [f"- {FLAGGED} step {n.depth}, #{n.id} ({n.source}, {n.fate}): {n.flag}" for n in flagged]
        lines.append("")
    stats = run.stats
    parts = [f"{stats.wall_seconds:.1f} s"]
    for model, count in stats.tokens.items():
        if count:
            parts.append(f"{model} {count} tokens")
    rate = stats.thought_acceptance_rate
    if rate is not None:
        parts.append(f"thoughts accepted {rate:.0%}")
    if stats.trial_acceptance_rate is not None:
        parts.append(f"trial drafts accepted {stats.trial_acceptance_rate:.0%} (judged only, not kept)")
    lines += [f"Stats ({run.method}): " + ", ".join(parts) + ("; cancelled" if run.cancelled else ""), ""]
    legend = ", ".join(f"{sym} {name}" for name, sym in FATE_SYMBOLS.items())
    lines += [f"<sub>{legend}</sub>", ""] if path else []
    return lines

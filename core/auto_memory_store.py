"""auto's memory kept between processes, in one JSON file.

Within a process, method auto keeps what one search learned (its mode, probe
interval and recent step timings: core.auto_method.AutoMemory) for the next
search on the same Solver.  Each ``specsearch solve`` is a new process, so
without this file every solve would pay again, in specsearch steps whose
drafts are thrown away, to learn what the last one knew.  An entry is found
again only for the same model files (path, size, modification time), load
options and reward-model settings, and the same search settings
(core.auto_method.memory_key); anything else starts afresh.  The file is a
cache: it is written atomically, and an unreadable or malformed one (or entry)
is ignored and replaced on the next save.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Mapping

from .atomic import atomic_write_json
from .auto_method import AR, KEEP_STEPS, SPECSEARCH, AutoMemory, SwitchDecision
from .cost_model import Call, StepTiming

FORMAT = 1
MAX_ENTRIES = 32
"""Most memories kept (the most recently saved): one per models-and-settings combination."""


def file_identity(path: str) -> dict[str, Any]:
    """A local model file as the memory knows it: replaced or rewritten, it is another model."""
    resolved = Path(path).expanduser().resolve()
    try:
        st = resolved.stat()
    except OSError:
        return {"path": str(resolved)}
    return {"path": str(resolved), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def solver_identity(parts: Mapping[str, Any]) -> str:
    """One string for the models and settings a Solver runs with (JSON-able ``parts``)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def memory_to_dict(memory: AutoMemory) -> dict[str, Any]:
    d = memory.decision
    steps = memory.timings()[-KEEP_STEPS:]
    return {"mode": d.mode, "ar_steps": d.ar_steps, "probe_every": d.probe_every, "streak": d.streak,
            "pending": memory.unseen_judged(), "steps": [asdict(s) for s in steps]}


def _step_from_dict(raw: Mapping[str, Any]) -> StepTiming:
    known = {f.name for f in fields(StepTiming)}
    values = {k: v for k, v in raw.items() if k in known}
    values["calls"] = {str(model): Call(**call) for model, call in raw.get("calls", {}).items()}
    step = StepTiming(**values)
    if not all(c.seconds >= 0 and c.batch >= 0 and c.tokens >= 0 for c in step.calls.values()):
        raise ValueError("negative timing")
    return step


def memory_from_dict(raw: Mapping[str, Any]) -> AutoMemory:
    """The memory saved by memory_to_dict; ValueError/TypeError/KeyError when it is not one."""
    mode = raw["mode"]
    if mode not in (SPECSEARCH, AR):
        raise ValueError(f"unknown mode {mode!r}")
    decision = SwitchDecision(start=mode)
    decision.ar_steps = int(raw["ar_steps"])
    decision.probe_every = int(raw["probe_every"])
    decision.streak = int(raw.get("streak", 0))  # absent from files written before it was kept
    if decision.ar_steps < 0 or decision.probe_every < 0 or decision.streak < 0:
        raise ValueError("negative probe counters")
    return AutoMemory(decision, past=[_step_from_dict(s) for s in raw["steps"]][-KEEP_STEPS:],
                      pending=bool(raw.get("pending", False)))


class AutoMemoryStore:
    """The memory file: ``load`` this Solver's memories, ``save`` them after a search."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _entries(self) -> dict[str, dict]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("entries"), dict):
            return {}
        return {k: v for k, v in raw["entries"].items() if isinstance(v, dict)}

    def load(self, identity: str) -> dict[str, AutoMemory]:
        """memory_key -> memory, for the Solver of ``identity``; a malformed entry is left out."""
        found = {}
        for entry in self._entries().values():
            if entry.get("identity") != identity or not isinstance(entry.get("key"), str):
                continue
            try:
                found[entry["key"]] = memory_from_dict(entry["memory"])
            except (KeyError, TypeError, ValueError):
                continue
        return found

    def save(self, identity: str, memories: Mapping[str, dict[str, Any]]) -> None:
        """Write ``memories`` (memory_key -> memory_to_dict of the memory) for ``identity``, keeping
        other Solvers' entries up to MAX_ENTRIES in all (the most recent); OSError when it cannot
        be written."""
        if not memories:
            return
        entries = self._entries()
        now = time.time()
        for key, memory in memories.items():
            name = hashlib.sha256(f"{identity}\n{key}".encode()).hexdigest()[:32]
            entries[name] = {"identity": identity, "key": key, "saved": now, "memory": memory}
        newest = sorted(entries.items(), key=lambda kv: kv[1].get("saved", 0) if isinstance(
            kv[1].get("saved", 0), (int, float)) else 0, reverse=True)[:MAX_ENTRIES]
        atomic_write_json(self.path, {"format": FORMAT, "entries": dict(newest)})

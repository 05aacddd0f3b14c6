"""auto's memory between processes (core.auto_memory_store): real searches on tiny models."""

from __future__ import annotations

import json
import os
import shutil

from specsearch.cli.main import main
from specsearch.core import events as ev
from specsearch.core.api import Solver
from specsearch.core.auto_memory_store import MAX_ENTRIES, AutoMemoryStore, memory_from_dict, memory_to_dict
from specsearch.core.auto_method import AR, SPECSEARCH, AutoMemory, predict_ratio
from test_auto_method import QUESTION, config

REJECT_ALL = dict(threshold_margin=1e9)  # every draft rejected: auto switches to ar


def solve(tiny, path, events=None, small=None, **kw):
    with Solver(small=small or tiny["draft"], large=tiny["target"], prm=small or tiny["draft"],
                auto_memory=path) as solver:
        return solver.solve(QUESTION, config(**{**REJECT_ALL, **kw}), on_event=events.append if events is not None else None)


def switches(events):
    return [(e.step, e.from_method, e.to_method, e.reason) for e in events if isinstance(e, ev.MethodSwitched)]


class TestAcrossSolvers:
    def test_a_new_solver_starts_where_the_last_one_ended(self, tiny, tmp_path):
        path = tmp_path / "auto_memory.json"
        first = solve(tiny, path)
        assert [s.generator for s in first.steps][-1] == "ar" and path.exists()
        events: list = []
        second = solve(tiny, path, events, seed=8)
        (step, before, after, reason), = switches(events)
        assert (step, before, after) == (1, SPECSEARCH, AR) and "in earlier searches" in reason
        assert [s.generator for s in second.steps][0] == "ar"

    def test_without_the_file_a_new_solver_learns_again(self, tiny, tmp_path):
        solve(tiny, None)
        again = solve(tiny, None, seed=8)
        assert [s.generator for s in again.steps][:3] == ["specsearch"] * 3

    def test_other_settings_or_a_changed_model_file_start_afresh(self, tiny, tmp_path):
        path = tmp_path / "auto_memory.json"
        small = tmp_path / "draft.gguf"
        shutil.copy(tiny["draft"], small)
        solve(tiny, path, small=small)
        other_settings = solve(tiny, path, small=small, children=2)
        assert [s.generator for s in other_settings.steps][:3] == ["specsearch"] * 3
        st = small.stat()
        os.utime(small, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten: maybe another model
        changed = solve(tiny, path, small=small)
        assert [s.generator for s in changed.steps][:3] == ["specsearch"] * 3
        # Both kinds of entry are kept side by side.
        assert len(json.loads(path.read_text())["entries"]) == 3

    def test_the_saved_memory_predicts_what_the_live_one_did(self, tiny, tmp_path):
        path = tmp_path / "auto_memory.json"
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"], auto_memory=path) as solver:
            solver.solve(QUESTION, config(**REJECT_ALL))
            live, = [m for m in solver.models("auto").between_searches.values() if isinstance(m, AutoMemory)]
        restored = memory_from_dict(json.loads(json.dumps(memory_to_dict(live))))
        assert restored.timings() == live.timings() and len(restored.timings()) >= 3
        assert (restored.decision.mode, restored.decision.probe_every, restored.decision.ar_steps,
                restored.decision.streak) == (live.decision.mode, live.decision.probe_every,
                                              live.decision.ar_steps, live.decision.streak)
        assert restored.unseen_judged() == live.unseen_judged()
        assert predict_ratio(restored.timings(), 6)[0] == predict_ratio(live.timings(), 6)[0]


class TestBadFiles:
    def test_a_malformed_file_is_ignored_and_replaced(self, tiny, tmp_path):
        path = tmp_path / "auto_memory.json"
        path.write_text("{not json")
        result = solve(tiny, path)
        assert result.steps and not result.cancelled
        saved = json.loads(path.read_text())
        assert saved["format"] == 1 and len(saved["entries"]) == 1

    def test_a_malformed_entry_is_left_out_and_the_good_ones_load(self, tiny, tmp_path):
        path = tmp_path / "auto_memory.json"
        solve(tiny, path)
        saved = json.loads(path.read_text())
        (name, good), = saved["entries"].items()
        bad = dict(good, memory=dict(good["memory"], mode="sideways"))
        negative = dict(good, memory=dict(good["memory"], steps=[{"step": 1, "calls": {"small": {
            "batch": 1, "tokens": 3, "seconds": -1.0}}}]))
        saved["entries"] = {"b": bad, name: good, "n": negative, "x": 7}
        path.write_text(json.dumps(saved))
        store = AutoMemoryStore(path)
        loaded = store.load(good["identity"])
        assert list(loaded) == [good["key"]] and loaded[good["key"]].decision.mode == AR

    def test_an_unwritable_file_loses_the_memory_not_the_answer(self, tiny, tmp_path):
        path = tmp_path / "auto_memory.json"
        path.mkdir()  # a directory where the file should be: the write fails
        with Solver(small=tiny["draft"], large=tiny["target"], prm=tiny["draft"], auto_memory=path) as solver:
            result = solver.solve(QUESTION, config(**REJECT_ALL))
            assert result.steps and not result.cancelled
            assert any("auto's memory was not saved" in n for n in solver.notices)
        assert path.is_dir() and not any(path.iterdir())

    def test_the_file_keeps_only_the_most_recent_entries(self, tiny, tmp_path):
        path = tmp_path / "auto_memory.json"
        solve(tiny, path)
        store = AutoMemoryStore(path)
        (entry,) = json.loads(path.read_text())["entries"].values()
        memory = memory_to_dict(memory_from_dict(entry["memory"]))
        for i in range(MAX_ENTRIES + 5):
            store.save(f"identity-{i}", {"auto:x": memory})
        entries = json.loads(path.read_text())["entries"].values()
        assert len(entries) == MAX_ENTRIES
        assert {e["identity"] for e in entries} == {f"identity-{i}" for i in range(5, MAX_ENTRIES + 5)}


class TestSolveCommand:
    ARGS = ["--method", "auto", "--depth", "10", "--step-tokens", "12", "--children", "3", "--beam", "2",
            "--seed", "7", "--threshold-margin", "1e9", "--json"]

    def run(self, capsys, tiny, *extra):
        models = ["--small", str(tiny["draft"]), "--large", str(tiny["target"]), "--prm", str(tiny["draft"])]
        assert main(["solve", QUESTION, *models, *self.ARGS, *extra]) == 0
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        return [(e["step"], e["to_method"]) for e in events if e["event"] == "MethodSwitched"]

    def test_a_second_solve_starts_in_ar_and_no_auto_memory_starts_afresh(self, capsys, tiny):
        first = self.run(capsys, tiny)
        assert first and first[0][0] > 1  # learned during the search
        assert self.run(capsys, tiny) == [(1, "ar")]  # told at its first step
        afresh = self.run(capsys, tiny, "--no-auto-memory")
        assert afresh and afresh[0][0] > 1  # learns again, during the search

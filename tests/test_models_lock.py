"""Registry changes hold a lock around reload → change → save: overlapping writers
(two processes, a pull and a `set-default`, the app's stale Registry object) never
revert each other."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from specsearch.models import Registry, pull
from hub_fixtures import hub  # noqa: F401  (fixture)
from tiny_models import write_tiny_model

# Each process loads the registry once (as `pull` and the app's model screen do), waits for
# the start signal, then registers its N linked model files one by one.
WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from specsearch.models import Registry
    folder, start = Path(sys.argv[1]), Path(sys.argv[2])
    reg = Registry.load()
    while not start.exists():
        time.sleep(0.005)
    for model in sorted(folder.glob("*.gguf")):
        reg.import_file(model, name=model.stem, link=True, sha256="0" * 64)
""")


def run_racing(script: str, args: list[list[str]], start: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", script, *a], env=os.environ.copy(), stderr=subprocess.PIPE,
                              text=True) for a in args]
    time.sleep(1.5)  # both have imported specsearch and loaded the registry
    start.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err


def test_two_processes_racing_lose_no_update(tmp_path, tiny):
    n = 15
    data = tiny["target"].read_bytes()
    for tag in ("p", "q"):
        (tmp_path / tag).mkdir()
        for i in range(n):
            (tmp_path / tag / f"{tag}-{i:02d}.gguf").write_bytes(data)
    start = tmp_path / "start"
    run_racing(WRITER, [[str(tmp_path / "p"), str(start)], [str(tmp_path / "q"), str(start)]], start)
    names = {e.name for e in Registry.load().entries()}
    assert names == {f"{tag}-{i:02d}" for tag in ("p", "q") for i in range(n)}


def test_settings_race_between_processes_keeps_every_model_change(tmp_path, tiny):
    reg = Registry.load()
    for name in ("a", "b"):
        reg.import_file(tiny["target"] if name == "a" else tiny["draft"], name=name, link=True)
    n = 20
    start = tmp_path / "start"
    code = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from specsearch.models import Registry
        name, n, start = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
        reg = Registry.load()
        while not start.exists():
            time.sleep(0.005)
        for i in range(1, n + 1):
            reg.update_settings(name, n_ctx=100 + i)
    """)
    run_racing(code, [["a", str(n), str(start)], ["b", str(n), str(start)]], start)
    again = Registry.load()
    assert (again.get("a").n_ctx, again.get("b").n_ctx) == (100 + n, 100 + n)


def test_a_stale_registry_object_does_not_revert_another_writer(tiny):
    """The app's model screen keeps the Registry it read; its change applies to the file as it is now."""
    screen_copy = Registry.load()
    other = Registry.load()
    other.import_file(tiny["target"], name="big", role="large")
    other.import_file(tiny["draft"], name="little", role="small")
    other.set_default("large", "big")
    screen_copy.set_default("small", "little")  # loaded before any of that
    again = Registry.load()
    assert {r: (e.name if e else None) for r, e in again.defaults().items()} == \
        {"small": "little", "large": "big", "prm": None}
    screen_copy.remove("little")
    assert [e.name for e in Registry.load().entries()] == ["big"]


def test_a_change_made_during_a_download_survives_the_pull(hub, tiny, tmp_path):
    reg = Registry.load()
    reg.import_file(tiny["target"], name="big", role="large")
    hub.add("org/tiny", "little.gguf", tiny["draft"].read_bytes())
    changed = []

    def meanwhile(done: int, total: int) -> None:  # another terminal: set-default and settings mid-download
        if not changed:
            Registry.load().set_default("large", "big")
            Registry.load().update_settings("big", n_gpu_layers=0, n_threads=2)
            changed.append(True)

    entry = pull("org/tiny", "little.gguf", on_progress=meanwhile)
    again = Registry.load()
    assert changed and again.defaults()["large"].name == "big"
    assert (again.get("big").n_gpu_layers, again.get("big").n_threads) == (0, 2)
    assert again.get(entry.name).path == entry.path and Path(entry.path).is_file()

"""`specsearch models clean`: partial downloads no running pull holds are deleted and counted;
the partial of a pull running right now is kept and that pull still finishes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from specsearch.cli.main import main
from specsearch.models import DownloadError, pull
from specsearch.models import partials
from specsearch.models.sizes import human_bytes
from hub_fixtures import hub  # noqa: F401  (fixture)
from tiny_models import write_tiny_model


@pytest.fixture
def data(tmp_path) -> bytes:
    return write_tiny_model(tmp_path / "m.gguf", 5).read_bytes()


def leftover() -> list[Path]:
    root = partials.downloads_dir()
    return sorted(root.rglob("*.incomplete")) if root.exists() else []


def test_a_failed_pulls_partial_is_listed_then_deleted(hub, data, capsys):
    hub.add("org/tiny", "tiny.gguf", data)
    hub.break_next_get = True
    with pytest.raises(DownloadError):
        pull("org/tiny", "tiny.gguf")
    [stale] = leftover()
    size = stale.stat().st_size
    assert 0 < size < len(data)
    assert main(["models", "clean", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete {stale}" in out and "would delete 1 partial download(s)" in out
    assert stale.exists()
    assert main(["models", "clean"]) == 0
    out = capsys.readouterr().out
    assert f"deleted {stale}" in out and f"{human_bytes(size)} freed" in out
    assert leftover() == [] and not partials.downloads_dir().joinpath("org--tiny").exists()
    assert main(["models", "clean"]) == 0
    assert "deleted 0 partial download(s), 0 B freed" in capsys.readouterr().out


def test_a_running_pulls_partial_is_kept_and_the_pull_finishes(hub, data, capsys):
    hub.add("org/tiny", "tiny.gguf", data)
    started, go_on = threading.Event(), threading.Event()

    def progress(done: int, total: int) -> None:
        if done and not started.is_set():
            started.set()
            assert go_on.wait(30)

    result: list = []
    worker = threading.Thread(target=lambda: result.append(pull("org/tiny", "tiny.gguf", on_progress=progress)))
    worker.start()
    try:
        assert started.wait(30)
        [running] = leftover()
        report = partials.clean()
        assert report.removed == [] and report.in_use == [running] and running.exists()
        assert main(["models", "clean"]) == 0
        assert f"kept {running}: a pull is writing it" in capsys.readouterr().out
        with pytest.raises(partials.PartialBusyError, match="another specsearch is downloading"):
            pull("org/tiny", "tiny.gguf")  # a second pull of the same file does not write into it
    finally:
        go_on.set()
        worker.join(30)
    assert result and Path(result[0].path).read_bytes() == data
    assert leftover() == []

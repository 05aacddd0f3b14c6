"""Multi-line question input with history recall.

Enter sends; Ctrl+J (or Alt+Enter) starts a new line; pasted text keeps its
lines.  Up on the first line / Down on the last line step through earlier
questions.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea


class QuestionInput(TextArea, inherit_bindings=False):
    DEFAULT_CSS = """
    QuestionInput { height: auto; min-height: 3; max-height: 8; }
    """

    # TextArea's own bindings, minus F6/F7 (select line / all): the app uses them for screens
    BINDINGS = [b for b in TextArea.BINDINGS if not (isinstance(b, Binding) and b.key in ("f6", "f7"))] + [
        Binding("enter", "submit", "Send", show=False),
        Binding("ctrl+j", "newline", "New line", show=False),
    ]

    @dataclass
    class Submitted(Message):
        input: "QuestionInput"
        text: str

        @property
        def control(self) -> "QuestionInput":
            return self.input

    def __init__(self, placeholder: str = "", history: list[str] | None = None, **kwargs) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)
        self.placeholder = placeholder
        self.recall_list: list[str] = history if history is not None else []
        self._recall: int | None = None  # index into history while recalling
        self._draft = ""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.action_submit()
            return
        if event.key in ("ctrl+j", "alt+enter"):
            event.stop()
            event.prevent_default()
            self.action_newline()
            return
        if event.key == "up" and self.cursor_location[0] == 0 and self.recall_list:
            event.stop()
            event.prevent_default()
            self.recall(-1)
            return
        if event.key == "down" and self.cursor_location[0] == self.document.line_count - 1 and self._recall is not None:
            event.stop()
            event.prevent_default()
            self.recall(+1)
            return
        await super()._on_key(event)

    def action_newline(self) -> None:
        self.insert("\n")

    def action_submit(self) -> None:
        text = self.text.strip()
        if not text:
            return
        if not self.recall_list or self.recall_list[-1] != text:
            self.recall_list.append(text)
        self._recall = None
        self.clear()
        self.post_message(self.Submitted(self, text))

    def recall(self, direction: int) -> None:
        """Step through earlier questions (-1: older, +1: newer, back to the draft)."""
        if self._recall is None:
            if direction > 0:
                return
            self._draft = self.text
            index = len(self.recall_list) - 1
        else:
            index = self._recall + direction
        if index < 0:
            return
        if index >= len(self.recall_list):
            self._recall = None
            self.load_text(self._draft)
        else:
            self._recall = index
            self.load_text(self.recall_list[index])
        self.move_cursor(self.document.end)

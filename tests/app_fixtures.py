"""Helpers and fixtures for the Textual app tests (imported by tests/test_app_*.py).

The app runs against the real core with tiny generated GGUF models; nothing
from llama.cpp or the Solver is mocked.  Data and config dirs are already
redirected to tmp paths by conftest's autouse fixture.
"""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tiny_models import write_tiny_model

from specsearch.app.app import SpecSearchApp
from specsearch.app.screens.chat import ChatScreen
from specsearch.app.search_worker import SolverPool
from specsearch.app.settings import SettingsStore
from specsearch.app.widgets.question_input import QuestionInput
from specsearch.core.api import Solver
from specsearch.core.tree import SearchResult, SearchStats, StepRecord, ThoughtNode

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"

# Small and fast: a search takes well under a second on the tiny models.
FAST = dict(max_depth=3, max_step_tokens=16, children=2, beam_width=2, seed=7, temperature=0.9, n_threads=1)
# Long enough to cancel in the middle (several seconds), on models with a larger context.
LONG = dict(max_depth=30, max_step_tokens=64, children=4, beam_width=2, seed=7, temperature=0.9, n_threads=1)


def async_test(fn):
    """Run an ``async def`` test with asyncio.run (no pytest async plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


async def wait_until(pilot, predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
                     explain: Callable[[], str] | None = None) -> Any:
    """Let the app run until ``predicate()`` is truthy; fail after ``timeout`` seconds, with
    ``explain()`` (what the app was doing) in the message when given."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f": {explain()}" if explain is not None else ""
            raise AssertionError(
                f"timed out after {timeout}s waiting for {getattr(predicate, '__name__', predicate)}{detail}")
        await pilot.pause(interval)


async def type_text(pilot, text: str) -> None:
    """Type into the focused TextArea or Input (Enter is pressed separately).  Inserting is
    the same as typing printable characters, only faster."""
    from textual.widgets import Input

    widget = pilot.app.focused
    if isinstance(widget, Input):
        widget.insert_text_at_cursor(text)
    else:
        widget.insert(text)
    await pilot.pause()



async def ask(pilot, question: str) -> ChatScreen:
    """Type ``question`` into the chat screen and send it; returns once the search has started."""
    screen = pilot.app.screen
    assert isinstance(screen, ChatScreen)
    screen.query_one("#question", QuestionInput).focus()
    await type_text(pilot, question)
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.live is not None)
    return screen


def finished(screen: ChatScreen) -> Callable[[], bool]:
    """A wait_until predicate: the chat's search is over, its run ended and the history saved."""
    def search_finished() -> bool:
        return not screen.running and screen.live is not None and screen.live.done and saved(screen.app)()
    return search_finished


def saved(app: SpecSearchApp) -> Callable[[], bool]:
    """A wait_until predicate: every history save the app asked for is on disk (they run in workers)."""
    def history_saved() -> bool:
        return app.services.writer.idle
    return history_saved


def notices(app: SpecSearchApp) -> list[str]:
    """Every notification the app has shown (still showing), as "title: message"."""
    return [f"{n.title}: {n.message}" if n.title else n.message for n in app._notifications]


def toast_texts(app: SpecSearchApp) -> list[str]:
    """The text of the notifications on screen, as rendered (markup would have been applied here).
    Only with ``app.run_test(notifications=True)``: tests run without toasts otherwise."""
    return [toast.render().plain for toast in app.screen.query("Toast")]


def make_app(models: dict[str, Path] | None, check_models: bool = False, start_mode: str = "chat",
             batch_invariant: bool = False, **overrides: Any) -> SpecSearchApp:
    """The app with ``models`` and the FAST search settings given as command-line overrides.
    ``batch_invariant``: the core's reproducible numerics, for comparing with a second call."""
    cli: dict[str, Any] = dict(FAST)
    if models is not None:
        cli.update(small=str(models["small"]), large=str(models["large"]), prm=str(models["small"]))
    cli.update(overrides)
    pool = SolverPool(functools.partial(Solver, batch_invariant=True)) if batch_invariant else None
    return SpecSearchApp(SettingsStore.load(cli), pool=pool, check_models=check_models, start_mode=start_mode)


@pytest.fixture
def app_models(tiny) -> dict[str, Path]:
    """small = conftest's draft (seed 2), large = its target (seed 1): same vocabulary."""
    return {"small": tiny["draft"], "large": tiny["target"]}


@pytest.fixture(scope="session")
def long_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same pair with an 8192-token context, for searches long enough to cancel."""
    d = tmp_path_factory.mktemp("tiny-long")
    return {
        "small": write_tiny_model(d / "small.gguf", 2, context_length=8192),
        "large": write_tiny_model(d / "large.gguf", 1, context_length=8192),
    }


def synthetic_result(question: str = "What is $\\frac{1}{2} + 3$?") -> SearchResult:
    """A small hand-made SpecSearch record with every fate (for snapshot tests, which need
    output that does not depend on llama.cpp numerics)."""
    n = [
        ThoughtNode(0, None, 1, "We need to add $\\frac{1}{2}$ and $3$.", 12, "large", "generated", 0.81, 0.81, None, True),
        ThoughtNode(1, None, 1, "Let x be the sum.", 6, "large", "generated", 0.55, 0.55, None, True),
        ThoughtNode(2, 0, 2, "3 = 6/2, so the sum is 7/2.", 11, "small", "accepted", 0.77, 0.77, 0.68, True),
        ThoughtNode(3, 0, 2, "The sum is 4.", 5, "small", "rejected", 0.21, None, 0.68),
        ThoughtNode(4, 1, 2, "x = 1/2 + 3", 7, "small", "rejected", 0.40, None, 0.68),
        ThoughtNode(5, 0, 2, "Write 3 as $\\frac{6}{2}$.", 9, "large", "regenerated", 0.74, 0.74, 0.68, True,
                    replaces=3),
        ThoughtNode(6, 1, 2, "So x = 3.5.", 5, "large", "regenerated", 0.52, 0.52, 0.68, False, replaces=4),
        ThoughtNode(7, 2, 3, "The answer is $\\boxed{\\frac{7}{2}}$.", 12, "small", "accepted", 0.93, 0.93, 0.70,
                    True, True),
        ThoughtNode(8, 5, 3, "Then $\\frac{1}{2}+\\frac{6}{2}=\\boxed{\\frac{7}{2}}$.", 18, "small", "accepted",
                    0.88, 0.88, 0.70, True, True),
    ]
    steps = [
        StepRecord(1, None, [0, 1], [], [], [], [0, 1], {"generate": 0.4, "score": 0.1}),
        StepRecord(2, 0.68, [2, 3, 4], [2], [3, 4], [5, 6], [2, 5], {"draft": 0.2, "score": 0.1, "regenerate": 0.5}),
        StepRecord(3, 0.70, [7, 8], [7, 8], [], [], [7, 8], {"draft": 0.2, "score": 0.1}),
    ]
    stats = SearchStats(
        wall_seconds=1.6,
        phase_seconds={"draft": 0.4, "score": 0.3, "regenerate": 0.5, "generate": 0.4, "select": 0.0},
        tokens={"small": 62, "large": 39},
        model_seconds={"small": 0.4, "large": 0.9},
        thoughts_drafted=5, thoughts_accepted=3, thoughts_rejected=2, thoughts_regenerated=2,
        tokens_drafted=20, tokens_accepted=15, target_passes=6,
    )
    return SearchResult(question, "specsearch", {"beam_width": 2, "children": 2, "max_depth": 3}, n, steps, 7,
                        "\n\n".join(x.text for x in (n[0], n[2], n[7])), "\\frac{7}{2}", stats)

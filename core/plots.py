"""Two-panel PNG figures for the benchmark (plot.png, curve.png).

Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch), so
it is safe from worker threads; the file is written atomically.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Callable

from specsearch.core.atomic import atomic_write_bytes

log = logging.getLogger(__name__)


def two_panel_png(path: Path, draw: Callable[[Any, Any], None]) -> Path | None:
    """Draw with ``draw(left_axes, right_axes)`` on an 11 x 4.5 inch figure and write
    it to ``path``; None (and a warning) when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        log.warning("matplotlib is not installed; %s not written", path)
        return None
    fig = Figure(figsize=(11, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    draw(left, right)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path

"""The cost model's figures in the statistics panel's rows (app.formatting)."""

from __future__ import annotations

from specsearch.app.formatting import speedup_text, stats_rows
from specsearch.app.live import LiveSearch
from specsearch.core import events as ev
from specsearch.core.tree import SearchStats


def stats(**kw) -> SearchStats:
    return SearchStats(wall_seconds=2.0, **kw)


def test_prediction_alone_then_beside_the_measurement():
    s = stats(predicted_ar_seconds=3.0, ceiling_seconds=1.0)
    assert speedup_text("specsearch", s, None) == "≈×1.50 predicted, ceiling ×3.00 (cost model; race or Ctrl+B measures)"
    assert speedup_text("specsearch", s, 5.0) == "×2.50 measured (ar 5.00 s vs 2.00 s) · ≈×1.50 predicted"
    assert speedup_text("ar", stats(predicted_ar_seconds=2.1), None) == "×1.00 (ar is the baseline)"
    assert speedup_text("specsearch", stats(), None).startswith("n/a (the cost model needs large-model thoughts")
    assert speedup_text("specsearch", stats(), 4.0) == "×2.00 measured (ar 4.00 s vs 2.00 s)"


def test_auto_switches_have_a_row():
    assert "auto switched" not in dict(stats_rows("auto", stats()))
    switches = [{"step": 3, "from_method": "specsearch", "to_method": "ar", "reason": "acceptance 5%: too low"},
                {"step": 8, "from_method": "ar", "to_method": "specsearch", "reason": "acceptance 70%: pays"}]
    rows = dict(stats_rows("auto", stats(switches=switches[:1])))
    assert rows["auto switched"] == "step 3: specsearch → ar, acceptance 5%: too low"
    rows = dict(stats_rows("auto", stats(switches=switches)))
    assert rows["auto switched"] == "step 8: ar → specsearch, acceptance 70%: pays (2 switches)"


def test_a_live_search_shows_a_switch_when_it_happens():
    live = LiveSearch("q", "auto")
    live.apply([ev.StatsUpdated(stats(predicted_ar_seconds=1.0))])
    before = live.stats
    switch = ev.MethodSwitched(4, "specsearch", "ar", "acceptance 5%: drafting costs more than it saves",
                               0.6, 0.05, 0.0, 0.2)
    live.apply([switch])
    assert live.stats.switches == [switch.record()] and before.switches == []  # the snapshot is not changed
    assert live.stats.predicted_ar_seconds == 1.0
    assert dict(stats_rows("auto", live.stats))["auto switched"] == (
        "step 4: specsearch → ar, acceptance 5%: drafting costs more than it saves")


class TestValueRange:
    """The β and score ranges under the sparklines keep the digits that tell their ends apart."""

    def test_crowded_values_get_the_digits_that_separate_them(self):
        from specsearch.app.widgets.stats_panel import value_range

        assert value_range([0.9766, 0.9774]) == "0.9766–0.9774, last 0.9774"
        assert value_range([0.9512, 0.9538, 0.9531]) == "0.951–0.954, last 0.953"
        assert value_range([0.59, 0.74, 0.61]) == "0.59–0.74, last 0.61"
        assert value_range([0.95, 0.95]) == "0.95–0.95, last 0.95"
        assert value_range([]) == "–"

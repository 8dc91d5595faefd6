"""The benchmark's figures: percentiles, median / min / max, targets, the table, the JSON file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.report import (
    Figure,
    Measure,
    Session,
    Target,
    baseline_medians,
    delta,
    percentile,
    ratio,
    ratio_of_medians,
    table,
    write_json,
)


def test_percentile_interpolates_between_ranks() -> None:
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(values, 0) == 10.0
    assert percentile(values, 50) == 30.0
    assert percentile(values, 100) == 50.0
    assert percentile(values, 25) == 20.0
    assert percentile(values, 90) == pytest.approx(46.0)


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.5], 99) == 7.5


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_p99_of_a_hundred_values_sits_near_the_top() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == pytest.approx(99.01)


def test_figure_summarizes_its_runs() -> None:
    fig = Figure("x.rate", "rate", "1/s", [300.0, 100.0, 200.0], Target(">=", 150))
    assert (fig.median, fig.min, fig.max) == (200.0, 100.0, 300.0)
    assert fig.verdict == "ok"


def test_even_number_of_runs_takes_the_middle_mean() -> None:
    assert Figure("k", "k", "", [1.0, 2.0, 3.0, 10.0]).median == 2.5


def test_targets_in_both_directions() -> None:
    assert Target(">=", 0.5).met(0.5) and not Target(">=", 0.5).met(0.49)
    assert Target("<=", 25).met(25) and not Target("<=", 25).met(25.1)
    assert Figure("p99", "p99", "ms", [30.0], Target("<=", 25)).verdict == "MISS"
    assert Figure("free", "free", "", [1.0]).verdict == ""
    assert str(Target(">=", 100_000)) == ">= 100,000"


def test_delta_is_signed_and_relative() -> None:
    assert delta(110.0, 100.0) == "+10.0%"
    assert delta(50.0, 100.0) == "-50.0%"
    assert delta(1.0, 0.0) == ""
    assert delta(math.nan, 1.0) == ""


def test_table_aligns_columns_and_marks_misses() -> None:
    figures = [
        Figure("a", "settled orders/s", "orders/s", [1234.5, 1000.0, 1500.0], Target(">=", 5000)),
        Figure("b", "peak RSS", "MB", [120.25], Target("<=", 500)),
    ]
    lines = table(figures).splitlines()
    assert lines[0].split() == ["figure", "median", "min", "max", "unit", "target"]
    assert set(lines[1]) <= {"-", " "}
    assert "1,234" in lines[2] and "MISS" in lines[2] and ">= 5,000" in lines[2]
    assert lines[3].rstrip().endswith("ok")
    right_edge = lines[0].index("median") + len("median")  # numbers are right-aligned
    assert lines[2][:right_edge].endswith("1,234") and lines[3][:right_edge].endswith("120.2")


def test_table_with_a_baseline_shows_the_change() -> None:
    figures = [Figure("a", "rate", "1/s", [120.0]), Figure("new", "new", "", [1.0])]
    text = table(figures, {"a": 100.0})
    assert "baseline" in text.splitlines()[0]
    assert "+20.0%" in text.splitlines()[2]
    assert text.splitlines()[3].rstrip().endswith("")  # no baseline figure: blank cells


def test_json_file_round_trips_to_a_baseline(tmp_path: Path) -> None:
    session = Session(meta={"versions": {"kafka": "4.1.1"}})
    session.add(Figure("throughput.orders_per_s", "rate", "orders/s", [1.0, 3.0, 2.0]))
    session.details["shape"] = {"hops": 6}
    out = tmp_path / "results" / "latest.json"
    write_json(session, out)
    document = json.loads(out.read_text())
    assert document["figures"]["throughput.orders_per_s"]["median"] == 2.0
    assert document["figures"]["throughput.orders_per_s"]["runs"] == [1.0, 3.0, 2.0]
    assert baseline_medians(document) == {"throughput.orders_per_s": 2.0}
    assert not list(out.parent.glob("*.tmp"))


class Rate:
    def __init__(self, per_s: float) -> None:
        self.per_s = per_s


def test_ratio_pairs_runs_while_ratio_of_medians_takes_one_value() -> None:
    m = Measure("ratio.x", "x vs y", "x", "per_s", Target(">=", 1))
    ours, theirs = [Rate(100), Rate(300), Rate(200)], [Rate(100), Rate(200), Rate(400)]
    assert ratio(m, ours, theirs).runs == [1.0, 1.5, 0.5]
    medians = ratio_of_medians(m, ours, theirs)
    assert medians.runs == [1.0] and medians.verdict == "ok"
    assert ratio_of_medians(m, [Rate(150)], theirs).runs == [0.75]  # counts may differ
    with pytest.raises(ValueError, match="both sides"):
        ratio_of_medians(m, [], theirs)


def test_baseline_of_a_new_figure_is_blank_and_of_an_old_one_compared(tmp_path: Path) -> None:
    before = Session(meta={})
    before.add(Figure("throughput.orders_per_s", "settled orders/s", "orders/s", [200.0]))
    out = tmp_path / "before.json"
    write_json(before, out)
    baseline = baseline_medians(json.loads(out.read_text()))
    now = [
        Figure("throughput.orders_per_s", "settled orders/s", "orders/s", [250.0]),
        Figure("throughput_2w.orders_per_s", "settled orders/s, 2 workers", "orders/s", [300.0]),
    ]
    lines = table(now, baseline).splitlines()
    assert "200" in lines[2] and "+25.0%" in lines[2]
    assert "%" not in lines[3]

"""The latency bench's split of an order's latency into hops, from record timestamps."""

from __future__ import annotations

from bench.config import BenchConfig
from bench.latency import HOPS, LatencyRun, hop_spans, hops_line, measured_orders
from devtools.simulator import build_scenario


def test_each_order_is_split_at_its_first_reserve_and_its_last_answer_before_the_outcome() -> None:
    spans = hop_spans(
        placed={"o-1": 1000, "o-2": 2000},
        reserves=[("o-1", 1004), ("o-1", 1003), ("o-2", 2010)],
        # o-2: its second line answers after the rejection settled the order
        answers=[("o-1", 1010), ("o-1", 1012), ("o-2", 2020), ("o-2", 2090)],
        outcomes={"o-1": 1030, "o-2": 2025},
    )
    assert spans == {
        "order -> reserve": [3.0, 10.0],
        "reserve -> last answer": [9.0, 10.0],
        "last answer -> outcome": [18.0, 5.0],
    }


def test_an_order_missing_a_record_is_left_out_not_counted_as_zero() -> None:
    spans = hop_spans(
        placed={"o-1": 1000, "o-2": 2000},
        reserves=[("o-1", 1001)],
        answers=[("o-1", 1002), ("o-2", 2005)],
        outcomes={"o-1": 1003, "o-2": 2009},
    )
    assert [len(spans[hop]) for hop in HOPS] == [1, 1, 1]


def test_the_hops_line_names_each_hop_with_its_p50_and_p99() -> None:
    run = LatencyRun(
        offered_per_s=100.0,
        achieved_per_s=100.0,
        measured=1,
        unsettled=0,
        event_ms=(1.0, 2.0, 3.0),
        record_ms=(1.0, 2.0, 3.0),
        peak_rss_mb=0.0,
        problems=[],
        hops_ms={"order -> reserve": (4.0, 9.5, 12.0)},
    )
    assert hops_line(run) == "hops, p50 / p99 ms: order -> reserve 4.0 / 9.5"


def test_a_run_measures_the_orders_sent_after_the_warm_up_in_the_order_sent() -> None:
    scenario = build_scenario("lat", 30)
    config = BenchConfig(latency_rate=5.0, latency_warmup_s=2.0)
    measured = measured_orders(scenario, config)
    assert measured == [o.order_id for o in scenario.orders][10:]

"""The benchmark's command line: modes, overrides and the scenario list; what a throughput run
reports per order and over several workers; the figures and targets of the issue."""

from __future__ import annotations

import pytest

from bench.config import SCENARIOS, BenchConfig
from bench.errors import BenchError
from bench.figures import (
    LATENCY_HALF,
    PEER_RATIO,
    THROUGHPUT,
    TWO_WORKERS,
    TWO_WORKERS_RATIO,
    latency_at_rate,
)
from bench.raw_loop import ChainShape
from bench.report import Figure, figures, ratio_of_medians
from bench.run import build_parser, config_from, half_capacity, two_worker_runs
from bench.throughput import ThroughputRun


def parse(*argv: str) -> BenchConfig:
    return config_from(build_parser().parse_args(list(argv)))


def run_of(
    orders: int = 100,
    elapsed_s: float = 1.0,
    consumed: int = 640,
    produced: int = 1270,
    peak_rss_mb: tuple[float, ...] = (100.0,),
    worker_cpu_s: tuple[float, ...] = (1.0,),
) -> ThroughputRun:
    return ThroughputRun.of(
        orders=orders,
        elapsed_s=elapsed_s,
        consumed=consumed,
        produced=produced,
        per_topic={},
        consumed_roles=[],
        peak_rss_mb=peak_rss_mb,
        worker_cpu_s=worker_cpu_s,
        problems=[],
    )


def by_key(found: list[Figure]) -> dict[str, Figure]:
    return {f.key: f for f in found}


def test_default_is_the_full_session() -> None:
    config = parse()
    assert (config.orders, config.repeat, config.recovery_keys) == (100_000, 3, 1_000_000)
    assert config.only == SCENARIOS and not config.quick
    assert config.latency_rate == 100.0  # the issue's low-load latency point
    assert config.two_workers and two_worker_runs(config) == 3


def test_two_worker_runs_once_in_quick_mode_and_never_when_skipped() -> None:
    assert two_worker_runs(parse("--quick", "--repeat", "3")) == 1
    assert two_worker_runs(parse("--repeat", "5")) == 5
    skipped = parse("--no-two-workers")
    assert not skipped.two_workers and two_worker_runs(skipped) == 0
    assert two_worker_runs(parse("--quick", "--no-two-workers")) == 0


def test_latency_rate_override() -> None:
    assert parse("--latency-rate", "250").latency_rate == 250.0


def test_quick_mode_with_an_explicit_override() -> None:
    config = parse("--quick", "--orders", "800", "--only", "throughput, raw")
    assert config.quick and config.repeat == 1 and config.orders == 800
    assert config.warmup_orders == 800  # never more warm-up than the run itself
    assert config.only == ("throughput", "raw")
    assert config.runs("raw") and not config.runs("peer")


def test_worker_environment_passes_through() -> None:
    config = parse("--worker-env", "ORDERSTREAM_LOG_LEVEL=warning", "--worker-env", "A=b=c")
    assert config.worker_env == {"ORDERSTREAM_LOG_LEVEL": "warning", "A": "b=c"}


def test_unknown_scenario_names_the_choices() -> None:
    with pytest.raises(BenchError, match="pick from throughput"):
        parse("--only", "throughput,speed")


def test_raw_chain_reads_and_writes_as_much_per_order_as_the_worker() -> None:
    run = run_of(orders=100, consumed=640, produced=1270)
    assert (run.consumed_per_order, run.produced_per_order) == pytest.approx((6.4, 12.7))
    shape = ChainShape.like(run)
    assert shape.hops == 6
    assert shape.hops * (1 + shape.side_per_hop) == pytest.approx(12.7)


def test_a_run_counts_records_and_cpu_per_settled_order() -> None:
    run = run_of(orders=2000, elapsed_s=4.0, consumed=6000, produced=14000, worker_cpu_s=(3.0,))
    assert run.orders_per_s == 500.0
    assert run.messages_per_s == 5000.0
    assert run.records_per_order == pytest.approx(10.0)  # read + written
    assert run.cpu_ms_per_order == pytest.approx(1.5)
    assert run.cpu_share == pytest.approx(0.75)
    assert run.workers == 1


def test_workers_on_one_machine_add_up_their_cpu_but_not_their_memory() -> None:
    run = run_of(orders=1000, peak_rss_mb=(310.0, 290.0), worker_cpu_s=(0.75, 0.5))
    assert run.workers == 2 and run.worker_cpu_s == [0.75, 0.5]
    assert run.cpu_s == pytest.approx(1.25)
    assert run.cpu_ms_per_order == pytest.approx(1.25)
    assert run.peak_rss_mb == 310.0  # the largest worker, not the sum


def test_throughput_figures_against_the_issue_targets() -> None:
    fast = by_key(figures([run_of(orders=1000, consumed=4000, produced=7000)], THROUGHPUT))
    assert fast["throughput.orders_per_s"].verdict == "ok"  # 1,000/s meets >= 1,000
    assert fast["throughput.records_per_order"].median == pytest.approx(11.0)
    assert fast["throughput.records_per_order"].verdict == "ok"
    assert fast["throughput.cpu_ms_per_order"].median == pytest.approx(1.0)
    assert fast["throughput.cpu_ms_per_order"].verdict == "ok"
    slow = by_key(figures([run_of(orders=999, consumed=6000, produced=7000)], THROUGHPUT))
    assert slow["throughput.orders_per_s"].verdict == "MISS"
    assert slow["throughput.records_per_order"].verdict == "MISS"  # 13 > 12
    assert slow["throughput.cpu_ms_per_order"].verdict == "MISS"  # 1.001 ms > 1 ms
    assert [f.label for f in figures([run_of()], THROUGHPUT)][:5] == [
        "settled orders/s, 1 worker",
        "Kafka records/s, 1 worker",
        "Kafka records per settled order (read + written)",
        "worker CPU while settling",
        "worker CPU per settled order",
    ]


def test_two_workers_are_reported_against_one_without_a_target() -> None:
    one = [run_of(elapsed_s=t) for t in (1.0, 0.5, 0.8)]  # 100, 200, 125 orders/s
    two = [run_of(elapsed_s=t) for t in (0.5, 0.4)]  # 200, 250 orders/s
    rate = figures(two, [TWO_WORKERS])[0]
    assert (rate.label, rate.median) == ("settled orders/s, 2 workers", 225.0)
    versus = ratio_of_medians(TWO_WORKERS_RATIO, two, one)
    assert versus.label == "2 workers vs 1" and versus.runs == [pytest.approx(225.0 / 125.0)]
    assert rate.verdict == versus.verdict == ""


def test_latency_half_capacity_comes_from_the_one_worker_median() -> None:
    rate = Figure("throughput.orders_per_s", "settled orders/s", "orders/s", [300.0, 200.0, 260.0])
    other = Figure("raw.orders_per_s", "raw", "orders/s", [9000.0])
    assert half_capacity([other, rate]) == 130.0
    assert half_capacity([other]) is None
    assert half_capacity([]) is None


def test_the_two_latency_runs_have_their_own_rows_and_targets() -> None:
    at_rate, at_half = latency_at_rate(100.0), LATENCY_HALF
    keys = [m.key for m in (*at_rate, *at_half)]
    assert len(set(keys)) == len(keys)
    assert len({m.label for m in (*at_rate, *at_half)}) == len(keys)
    p99 = {m.key: m for m in (*at_rate, *at_half) if m.attr == "p99_ms"}
    assert str(p99["latency.p99_ms"].target) == "<= 50"
    assert str(p99["latency_half.p99_ms"].target) == "<= 150"
    assert "100/s" in p99["latency.p99_ms"].label
    for rows in (at_rate, at_half):
        assert {"p50_ms", "p99_ms", "max_ms"} <= {m.attr for m in rows}


def test_peer_ratio_target_is_half_of_quix() -> None:
    assert PEER_RATIO.target is not None
    assert PEER_RATIO.target.met(0.5) and not PEER_RATIO.target.met(0.49)

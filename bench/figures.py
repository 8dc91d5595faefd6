"""What each scenario reports, in which unit, and the targets of the issue, in one place."""

from __future__ import annotations

from bench.latency import GRACE_S
from bench.report import Measure, Target

RATE, RSS = Target(">=", 5000), Target("<=", 500)
THROUGHPUT = (
    Measure(
        "throughput.orders_per_s", "settled orders/s, 1 worker", "orders/s", "orders_per_s", RATE
    ),
    Measure(
        "throughput.messages_per_s", "Kafka records/s, 1 worker", "records/s", "messages_per_s"
    ),
    Measure("throughput.cpu_share", "worker CPU while settling", "cores", "cpu_share"),
    Measure("throughput.peak_rss_mb", "peak RSS, worker", "MB", "peak_rss_mb", RSS),
)
RAW = (
    Measure("raw.orders_per_s", "raw aiokafka loop, orders/s", "orders/s", "orders_per_s"),
    Measure("raw.messages_per_s", "raw aiokafka loop, records/s", "records/s", "messages_per_s"),
    Measure("raw.peak_rss_mb", "peak RSS, raw loop", "MB", "peak_rss_mb", RSS),
)
RAW_RATIO = Measure("ratio.raw", "ratio to the raw loop", "x", "orders_per_s", Target(">=", 0.5))
# The same chain through Faust with no application code: how much of the gap is Faust's.
FAUST = (
    Measure("faust.orders_per_s", "bare Faust loop, orders/s", "orders/s", "orders_per_s"),
    Measure("faust.messages_per_s", "bare Faust loop, records/s", "records/s", "messages_per_s"),
    Measure("faust.peak_rss_mb", "peak RSS, bare Faust loop", "MB", "peak_rss_mb"),
)
FAUST_RATIO = Measure("ratio.faust", "ratio to the bare Faust loop", "x", "orders_per_s")
FAUST_VS_RAW = Measure("ratio.faust_raw", "bare Faust loop vs raw loop", "x", "orders_per_s")
PEER_OURS = (
    Measure("peer.orderstream_per_s", "inventory stage, orderstream", "commands/s", "per_s"),
    Measure(
        "peer.orderstream_rss_mb", "peak RSS, inventory stage, orderstream", "MB", "peak_rss_mb"
    ),
)
PEER_QUIX = (
    Measure("peer.quix_per_s", "inventory stage, Quix Streams", "commands/s", "per_s"),
    Measure("peer.quix_rss_mb", "peak RSS, inventory stage, Quix Streams", "MB", "peak_rss_mb"),
)
PEER_RATIO = Measure("ratio.peer", "inventory stage vs Quix Streams", "x", "per_s", Target(">=", 1))
LATENCY = (
    Measure("latency.p50_ms", "latency p50, event timestamps", "ms", "p50_ms"),
    Measure("latency.p99_ms", "latency p99, event timestamps", "ms", "p99_ms", Target("<=", 25)),
    Measure("latency.max_ms", "latency max, event timestamps", "ms", "max_ms"),
    Measure("latency.record_p50_ms", "latency p50, send -> status record", "ms", "record_p50_ms"),
    Measure("latency.record_p99_ms", "latency p99, send -> status record", "ms", "record_p99_ms"),
    Measure("latency.record_max_ms", "latency max, send -> status record", "ms", "record_max_ms"),
    Measure(
        "latency.unsettled",
        f"orders open {GRACE_S:.0f} s after the last send",
        "orders",
        "unsettled",
        Target("<=", 0),
    ),
    Measure(
        "latency.achieved_per_s", "latency: offered rate achieved", "orders/s", "achieved_per_s"
    ),
)


def recovery_measures(records: int, probe_orders: int) -> tuple[Measure, ...]:
    return (
        Measure(
            "recovery.ready_s", f"recovery of {records:,} records: start -> ready", "s", "ready_s"
        ),
        Measure(
            "recovery.records_per_s",
            "recovery, changelog records/s",
            "records/s",
            "records_per_s",
            Target(">=", 100_000),
        ),
        Measure(
            "recovery.net_records_per_s",
            "recovery, records/s less empty start-up",
            "records/s",
            "net_records_per_s",
        ),
        Measure("recovery.empty_ready_s", "start -> ready with empty tables", "s", "empty_ready_s"),
        Measure("recovery.probe_s", f"then {probe_orders} new orders settle in", "s", "probe_s"),
        Measure("recovery.peak_rss_mb", "peak RSS, recovered worker", "MB", "peak_rss_mb"),
    )

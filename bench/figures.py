"""What each scenario reports, in which unit, and the targets of the issue, in one place."""

from __future__ import annotations

from bench.latency import GRACE_S
from bench.report import Measure, Target

RATE, RSS = Target(">=", 1000), Target("<=", 500)
THROUGHPUT = (
    Measure(
        "throughput.orders_per_s", "settled orders/s, 1 worker", "orders/s", "orders_per_s", RATE
    ),
    Measure(
        "throughput.messages_per_s", "Kafka records/s, 1 worker", "records/s", "messages_per_s"
    ),
    Measure(
        "throughput.records_per_order",
        "Kafka records per settled order (read + written)",
        "records",
        "records_per_order",
        Target("<=", 12),
    ),
    Measure("throughput.cpu_share", "worker CPU while settling", "cores", "cpu_share"),
    Measure(
        "throughput.cpu_ms_per_order",
        "worker CPU per settled order",
        "ms",
        "cpu_ms_per_order",
        Target("<=", 1),
    ),
    Measure("throughput.peak_rss_mb", "peak RSS, worker", "MB", "peak_rss_mb", RSS),
)
# Two workers on this machine sharing the partitions: reported, no target (the issue asks for
# the figure and its ratio to one worker, to see what a second process on the same cores buys).
TWO_WORKERS = Measure(
    "throughput_2w.orders_per_s", "settled orders/s, 2 workers", "orders/s", "orders_per_s"
)
TWO_WORKERS_RATIO = Measure("ratio.two_workers", "2 workers vs 1", "x", "orders_per_s")
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
PEER_RATIO = Measure(
    "ratio.peer", "inventory stage vs Quix Streams", "x", "per_s", Target(">=", 0.5)
)


def latency_measures(prefix: str, at: str, p99: Target) -> tuple[Measure, ...]:
    """The rows of one latency scenario: keys under `prefix` ("latency"), labels saying at what
    offered rate (`at`, e.g. "100/s"), the p99 of the event timestamps against `p99`."""
    return (
        Measure(f"{prefix}.p50_ms", f"latency p50 at {at}, event timestamps", "ms", "p50_ms"),
        Measure(f"{prefix}.p99_ms", f"latency p99 at {at}, event timestamps", "ms", "p99_ms", p99),
        Measure(f"{prefix}.max_ms", f"latency max at {at}, event timestamps", "ms", "max_ms"),
        Measure(
            f"{prefix}.record_p50_ms",
            f"latency p50 at {at}, send -> status record",
            "ms",
            "record_p50_ms",
        ),
        Measure(
            f"{prefix}.record_p99_ms",
            f"latency p99 at {at}, send -> status record",
            "ms",
            "record_p99_ms",
        ),
        Measure(
            f"{prefix}.record_max_ms",
            f"latency max at {at}, send -> status record",
            "ms",
            "record_max_ms",
        ),
        Measure(
            f"{prefix}.unsettled",
            f"latency at {at}: orders open {GRACE_S:.0f} s after the last send",
            "orders",
            "unsettled",
            Target("<=", 0),
        ),
        Measure(
            f"{prefix}.achieved_per_s",
            f"latency at {at}: offered rate achieved",
            "orders/s",
            "achieved_per_s",
        ),
    )


def latency_at_rate(rate: float) -> tuple[Measure, ...]:
    """The latency scenario at the configured offered rate (100 orders/s unless overridden)."""
    return latency_measures("latency", f"{rate:,.0f}/s", Target("<=", 50))


# At half the one-worker capacity measured in the same session (throughput.orders_per_s).
LATENCY_HALF = latency_measures("latency_half", "1/2 capacity", Target("<=", 150))


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

"""The cheaper Faust sensor reports exactly what Faust's own Prometheus sensor reports."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from orderstream.faust_ext.monitor import FastPrometheusMonitor


class _Owner:
    def __str__(self) -> str:
        return "orderstream.worker.agents.saga.saga_agent"


class _Stream:
    shortlabel = "Stream: Topic: orders|inventory-events"
    task_owner = _Owner()


def _feed(monitor: Any) -> None:
    """Three records on two partitions through one stream, table reads and writes."""
    stream, orders, stock = _Stream(), SimpleNamespace(name="orders"), SimpleNamespace(name="inv")
    for tp, offset in ((TP("orders", 0), 5), (TP("orders", 1), 9), (TP("orders", 0), 6)):
        message = SimpleNamespace(time_in=None)
        monitor.on_message_in(tp, offset, message)
        state = monitor.on_stream_event_in(tp, offset, stream, None)
        monitor.on_table_get(orders, b"k")
        monitor.on_table_set(orders, b"k", b"v")
        monitor.on_table_get(stock, b"k")
        monitor.on_table_del(stock, b"k")
        monitor.on_stream_event_out(tp, offset, stream, None, state)
        monitor.on_message_out(tp, offset, message)


def _exposition(cls: type[PrometheusMonitor]) -> list[str]:
    registry = CollectorRegistry()
    monitor = cls(metrics=FaustMetrics.create(registry, "faust"))
    _feed(monitor)
    lines = generate_latest(registry).decode().splitlines()
    # Latency histograms depend on the clock; everything else must match to the character.
    return [ln for ln in lines if "runtime" not in ln and "_created" not in ln]


def test_same_metrics_as_faust() -> None:
    ours, faust = _exposition(FastPrometheusMonitor), _exposition(PrometheusMonitor)
    assert ours == faust
    assert any('faust_table_operations_total{operation="keys_updated"' in ln for ln in ours)
    assert 'faust_messages_received_per_topics_partition{partition="0",topic="orders"} 6.0' in ours

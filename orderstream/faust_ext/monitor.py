"""Faust's Prometheus sensor with the same metrics at a fraction of the cost per event.

Faust calls its monitor several times for every record (received, handed to a stream, done,
acknowledged) and for every table read and write. The stock PrometheusMonitor resolves a
labelled child on each call (`labels(...)`: a dict lookup behind a lock) and, for every stream
event, rebuilds the stream's label through a regular expression. This subclass resolves each
child once and keeps it: same metric names, labels and values
(tests/unit/faust_ext/test_faust_monitor.py)."""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import PrometheusMonitor


class FastPrometheusMonitor(PrometheusMonitor):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_topic: dict[str, Any] = {}
        self._by_tp: dict[Any, Any] = {}
        self._by_stream: dict[Any, Any] = {}
        self._by_table: dict[tuple[str, str], Any] = {}

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        # Faust's Monitor.on_message_in, then the Prometheus part with cached children.
        self.messages_received_total += 1
        self.messages_active += 1
        self.messages_received_by_topic[tp.topic] += 1
        self.tp_read_offsets[tp] = offset
        message.time_in = self.time()
        m = self._metrics
        m.messages_received.inc()
        m.active_messages.inc()
        topic = self._by_topic.get(tp.topic)
        if topic is None:
            topic = self._by_topic[tp.topic] = m.messages_received_per_topics.labels(topic=tp.topic)
        topic.inc()
        position = self._by_tp.get(tp)
        if position is None:
            position = self._by_tp[tp] = m.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition
            )
        position.set(offset)

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        state = super(PrometheusMonitor, self).on_stream_event_in(tp, offset, stream, event)
        m = self._metrics
        m.total_events.inc()
        m.total_active_events.inc()
        child = self._by_stream.get(stream)
        if child is None:
            label = f"stream.{self._stream_label(stream)}.events"
            child = self._by_stream[stream] = m.total_events_per_stream.labels(stream=label)
        child.inc()
        return state

    def _table_op(self, table: Any, operation: str) -> None:
        key = (table.name, operation)
        child = self._by_table.get(key)
        if child is None:
            child = self._by_table[key] = self._metrics.table_operations.labels(
                table=f"table.{table.name}", operation=operation
            )
        child.inc()

    def on_table_get(self, table: Any, key: Any) -> None:
        self._table_or_create(table).keys_retrieved += 1
        self._table_op(table, self.KEYS_RETRIEVED)

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        self._table_or_create(table).keys_updated += 1
        self._table_op(table, self.KEYS_UPDATED)

    def on_table_del(self, table: Any, key: Any) -> None:
        self._table_or_create(table).keys_deleted += 1
        self._table_op(table, self.KEYS_DELETED)

"""Write-through tables (the `Table` app setting at least once): Faust's table, whose changelog
records go into the producer's buffer as plain records, not as Faust's future messages.

Faust sends each `table[key] = value` through `Topic.send_soon`: a PendingMessage and a
FutureMessage are built, the key and value go through their codecs, and once the record is with
the Kafka client its future gets sensors, a callback and a result; the callback writes the
acknowledged offset into the partition's RocksDB database. The saga's state and the inventory's
committed-hold markers are written this way several times per order, and the wrapping cost more
than the send.

What is kept: the store is written at once (Faust's `__setitem__`); the record is put into the
producer's buffer in the order the writes were made, and the buffer's flush before each commit
waits for it (orderstream/faust_ext/producer.py); the producer's `send` takes it, so a failed
delivery stops the commits like any other; each acknowledged offset is persisted in the
partition's database (where a restart reads the changelog from). In exactly-once mode, with a
threaded producer, or for a windowed table, Faust's own way is taken.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import faust


class ChangelogRecord(NamedTuple):
    """One write of a table, waiting in the producer's buffer."""

    table: Table
    key: bytes
    value: bytes | None  # None: the key was deleted
    partition: int


class Table(faust.Table[Any, Any]):
    """Faust's table, each write's changelog record handed to the producer's buffer plain."""

    def on_key_set(self, key: Any, value: Any) -> None:
        if not self._plain():
            super().on_key_set(key, value)
            return
        self._put(key, self.data._encode_value(value))  # type: ignore[attr-defined]
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        if not self._plain():
            super().on_key_del(key)
            return
        self._put(key, None)
        self._sensor_on_del(self, key)

    def _plain(self) -> bool:
        app = self.app
        return not (app.in_transaction or app.conf.producer_threaded or self._should_expire_keys())

    def _put(self, key: Any, value: bytes | None) -> None:
        partition = cast(int, self.partition_for_key(key))  # the record's; raises outside one
        encoded = self.data._encode_key(key)  # type: ignore[attr-defined]
        self.app.producer.buffer.put(ChangelogRecord(self, encoded, value, partition))  # type: ignore[arg-type]

    async def send_record(self, record: ChangelogRecord, producer: Any) -> None:
        """Hand the record to the producer (the buffer's sender calls this, in order)."""
        topic = self.changelog_topic.get_topic_name()
        delivery = await producer.send(
            topic, record.key, record.value, record.partition, None, None
        )
        delivery.add_done_callback(self._on_acknowledged)

    def _on_acknowledged(self, fut: Any) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return  # the producer counts the failure; nothing commits over it
        res = fut.result()
        self.data.set_persisted_offset(res.topic_partition, res.offset)

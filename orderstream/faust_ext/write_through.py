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

The tables of bytes the worker reads and writes on every step (`ModelTable`,
orderstream/worker/tables/model_table.py) go through `get_raw` and `put_raw`: what `table.get`
and `table[key] = value` do for bytes, without the layers in between (Faust's `Mapping.get`,
`ManagedUserDict`, `FastUserDict`, which read the store twice, `in` then the value, and the
store's codecs, which hand bytes back unchanged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, cast

import faust
from faust.stores.base import SerializedStore


class ChangelogRecord(NamedTuple):
    """One write of a table, waiting in the producer's buffer."""

    table: Table
    key: bytes
    value: bytes | None  # None: the key was deleted
    partition: int


class Table(faust.Table[Any, Any]):
    """Faust's table, each write's changelog record handed to the producer's buffer plain."""

    _fixed_plain: bool | None = None  # the part of `_plain` that never changes
    _raw: tuple[Callable[[bytes], bytes | None], Callable[[bytes, bytes], None]] | None = None

    def on_key_set(self, key: Any, value: Any) -> None:
        if not self._plain():
            super().on_key_set(key, value)
            return
        self._put(key, self.data._encode_value(value))  # type: ignore[attr-defined]
        self._sensor_on_set(self, key, value)

    def get_raw(self, key: bytes) -> bytes | None:
        """`table.get(key)` of a table of bytes: the same sensor, one read of the store."""
        self._sensor_on_get(self, key)
        return self._raw_store()[0](key)

    def put_raw(self, key: bytes, value: bytes) -> None:
        """`table[key] = value` of a table of bytes (`ManagedUserDict.__setitem__`: the
        changelog record, then the store)."""
        if not self._plain():
            self[key] = value
            return
        self._put_encoded(key, value, cast(int, self.partition_for_key(key)))
        self._sensor_on_set(self, key, value)
        self._raw_store()[1](key, value)

    def _raw_store(
        self,
    ) -> tuple[Callable[[bytes], bytes | None], Callable[[bytes, bytes], None]]:
        """The store's read and write of bytes: RocksDB's `_get` / `_set` (what its
        `__getitem__` / `__setitem__` call after the raw codec), or the memory store's dict."""
        if self._raw is None:
            data: Any = self.data
            if isinstance(data, SerializedStore):
                self._raw = (data._get, data._set)
            else:
                self._raw = (data.data.get, data.data.__setitem__)
        return self._raw

    def on_key_del(self, key: Any) -> None:
        if not self._plain():
            super().on_key_del(key)
            return
        self._put(key, None)
        self._sensor_on_del(self, key)

    def _plain(self) -> bool:
        fixed = self._fixed_plain
        if fixed is None:
            conf = self.app.conf
            fixed = self._fixed_plain = not (conf.producer_threaded or self._should_expire_keys())
        return fixed and not self.app.in_transaction

    def _put(self, key: Any, value: bytes | None) -> None:
        partition = cast(int, self.partition_for_key(key))  # the record's; raises outside one
        self._put_encoded(self.data._encode_key(key), value, partition)  # type: ignore[attr-defined]

    def _put_encoded(self, key: bytes, value: bytes | None, partition: int) -> None:
        self.app.producer.buffer.put(ChangelogRecord(self, key, value, partition))  # type: ignore[arg-type]

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

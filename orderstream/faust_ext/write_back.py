"""Write-back tables (the `Table` app setting): a value set while a record is processed is kept
in memory per partition and key; before each offset commit only the last value of each key is
sent to the changelog and, once the broker has it, written to RocksDB in one batch per
partition together with the changelog offset it reaches. Kafka Streams does the same with its
record cache, Quix Streams with state flushed at checkpoint.

Faust sends one changelog record and makes one RocksDB write (and, once acknowledged, a second
one for the persisted offset) for every `table[key] = value`; an order sets its saga state three
times and each product's stock twice, so most of those records were overwritten within the same
commit interval.

The cycle, driven by the worker's producer and consumer (orderstream/faust_ext/producer.py,
consumer.py, transactions.py):

1. `send_writes` (the producer's flush, before each commit): every value set since the last
   cycle goes to the changelog, a partition's in the order they were last set; the values stay
   readable from memory. At least once, they are taken first, and sent once every record put
   before them (events, and the records of tables that write through) is acknowledged
   (`take_writes`, `send_taken`: orderstream/faust_ext/producer.py).
2. The flush waits until the broker acknowledged them (exactly-once mode: until the
   transaction that carries them committed).
3. `write_sent` (just before the offsets are committed): one RocksDB write batch per partition
   with the values and the highest acknowledged changelog offset.
4. The input offsets are committed.

A crash between any two steps loses nothing: the input records past the committed offsets are
processed again, and every agent recognises a record whose effect its state already holds
(state ahead of the offsets is what a redelivery looks like). RocksDB is never ahead of its
persisted offset by a value the changelog lacks, so a restore from the changelog catches it up.
At a rebalance every value not stored yet is dropped, of kept partitions too: the rebalance
aborts the open transactions and every assigned partition is processed again from its committed
offset, its store restored from the changelog (what of the dropped values was committed is
there); a lost partition's committed values are the next owner's.

Reads by key (`table[key]`, `get`, `in`) see the values in memory first, and so does a
listing (`iter`, `keys`, `values`, `items`, `len`: the inventory listing, the gauges).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

import faust
from rocksdict import WriteBatch

DELETED = None  # a deletion waiting to be written
YIELD_EVERY = 256  # records sent between two turns of the event loop

#: Values taken from the tables for one cycle: partition -> key -> value (DELETED: deleted)
Taken = dict[int, dict[Any, Any]]

#: How a table sends a changelog record: (topic, key, value, partition, timestamp, headers) ->
#: its delivery (the producer's `send`).
Send = Callable[..., Awaitable[Any]]

#: Called with the number of partitions written so far in a flush (fault injection:
#: orderstream/worker/chaos.py)
on_partition_written: Callable[[int], None] | None = None


class Table(faust.Table[Any, Any]):
    """Faust's table with a write-back cache (module doc)."""

    #: At least once, this table's values of a flush are acknowledged before the other
    #: tables' are sent (orderstream/faust_ext/producer.py `Producer.flush`): after a crash in
    #: the middle of a flush it is never behind them.
    flush_first = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # partition -> key -> value (None: deleted), set since the last send_writes
        self._dirty: dict[int, dict[Any, Any]] = {}
        # partition -> key -> value sent to the changelog, not yet in the store
        self._sent: dict[int, dict[Any, Any]] = {}
        # changelog partition -> highest offset the broker acknowledged, not yet persisted
        self._acked: dict[int, int] = {}
        self._cycle = asyncio.Lock()  # one cycle hands its records to the producer at a time

    # -- reads and writes of the agents -----------------------------------------------------

    def _pending(self, key: Any) -> tuple[bool, Any]:
        for layer in (self._dirty, self._sent):
            for values in layer.values():
                if key in values:
                    return True, values[key]
        return False, None

    def __getitem__(self, key: Any) -> Any:
        found, value = self._pending(key)
        if not found:
            return super().__getitem__(key)
        if value is DELETED:
            return self.__missing__(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        found, value = self._pending(key)
        if not found:
            return self.data.get(key, default)
        return default if value is DELETED else value

    def get_raw(self, key: bytes) -> bytes | None:
        """`get(key)` of a table of bytes (orderstream/faust_ext/write_through.py)."""
        found, value = self._pending(key)
        if not found:
            return self.data.get(key)
        return None if value is DELETED else cast(bytes, value)

    def put_raw(self, key: bytes, value: bytes) -> None:
        self[key] = value

    def __contains__(self, key: object) -> bool:
        found, value = self._pending(key)
        return value is not DELETED if found else key in self.data

    def _pending_values(self) -> dict[Any, Any]:
        """Every value not stored yet, the newest of each key (DELETED: deleted)."""
        pending: dict[Any, Any] = {}
        for layer in (self._sent, self._dirty):  # the values set since sent win
            for values in layer.values():
                pending.update(values)
        return pending

    def __iter__(self) -> Iterator[Any]:
        """The stored keys and those set since, less those deleted since: a listing sees what
        a read by key sees."""
        pending = self._pending_values()
        for key in self.data:
            if key not in pending:
                yield key
        yield from (key for key, value in pending.items() if value is not DELETED)

    def keys(self) -> Any:
        return list(self)

    def values(self) -> Any:
        return [value for _, value in self.items()]

    def items(self) -> Any:
        pending = self._pending_values()
        stored = ((k, v) for k, v in self.data.items() if k not in pending)
        return [*stored, *((k, v) for k, v in pending.items() if v is not DELETED)]

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._set_last(key, value)
        self._sensor_on_set(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._set_last(key, DELETED)
        self._sensor_on_del(self, key)

    def _set_last(self, key: Any, value: Any) -> None:
        """Keep the partition's values in the order they were last set: a flush sends them in
        that order and the broker keeps a partition's records in order, so a crash in the
        middle of a flush keeps, of each partition, the values set up to some point. A step
        that sets several keys, the one that marks it done last (a customer's history after
        its listed order), stays whole or comes again."""
        partition = cast(int, self.partition_for_key(key))  # the record's; raises outside one
        values = self._dirty.setdefault(partition, {})
        values.pop(key, None)
        values[key] = value

    # -- the cycle (module doc) -------------------------------------------------------------

    async def send_writes(self, send: Send) -> int:
        """Step 1: the last value of each key set since the last cycle to the changelog,
        straight to the producer (`send`: the worker's, or in exactly-once mode the transaction
        manager's). Not through Faust's producer buffer: a commit's worth of records put there
        at once held every stream until the buffer drained.

        One cycle hands its records to the producer at a time: Faust flushes the producer at
        each commit, at a revocation and in the recovery at a rebalance, and a cycle that sent a
        key's older value after another sent its newer one left the older one last in the
        changelog, what a new owner restores. The producer keeps the order records were handed
        to it in, per partition."""
        async with self._cycle:
            return await self.send_taken(self.take_writes(), send)

    def take_writes(self) -> Taken:
        """The values set since the last cycle, taken for sending (readable until stored)."""
        dirty, self._dirty = self._dirty, {}
        for partition, values in dirty.items():
            self._sent.setdefault(partition, {}).update(values)  # read from here until stored
        return dirty

    async def send_taken(self, taken: Taken, send: Send) -> int:
        """Hand the taken values to the producer, in the order they were last set."""
        sent = 0
        topic = self.changelog_topic.get_topic_name()
        store: Any = self.data
        records = []
        for partition, values in taken.items():
            for key, value in values.items():
                v = None if value is DELETED else store._encode_value(value)
                records.append((store._encode_key(key), v, partition))
        for start in range(0, len(records), YIELD_EVERY):
            # A slice at a time, its sends side by side (a full batch of one partition does
            # not hold up the others), the streams running between slices.
            deliveries = await asyncio.gather(
                *(
                    send(topic, k, v, p, None, None)
                    for k, v, p in records[start : start + YIELD_EVERY]
                )
            )
            for delivery in deliveries:
                delivery.add_done_callback(self._on_written)
            sent += len(deliveries)
        return sent

    def _on_written(self, fut: Any) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return  # the producer counts the failure; nothing commits over it
        res = fut.result()
        partition = res.partition
        if res.offset > self._acked.get(partition, -1):
            self._acked[partition] = res.offset

    def write_sent(self) -> int:
        """Step 3: the values sent (and acknowledged: the flush waited) into the store, one
        batch per partition with the changelog offset they reach."""
        written = batches = 0
        sent, self._sent = self._sent, {}
        store: Any = self.data
        for partition, values in sent.items():
            written += len(values)
            offset = self._acked.pop(partition, None)
            dbs = getattr(store, "_dbs", None)
            if dbs is None:  # the memory store (agent tests)
                for key, value in values.items():
                    if value is DELETED:
                        store.data.pop(key, None)
                    else:
                        store.data[key] = value
                continue
            db = dbs.get(partition)
            if db is None:
                continue  # not this worker's any more: the changelog has them
            batch = WriteBatch(raw_mode=True)
            for key, value in values.items():
                k = store._encode_key(key)
                if value is DELETED:
                    batch.delete(k)
                else:
                    batch.put(k, store._encode_value(value))
                    store._key_index[k] = partition
            if offset is not None:
                batch.put(store.offset_key, str(offset).encode())
            db.write(batch)
            batches += 1
            if on_partition_written is not None:
                on_partition_written(batches)
        return written

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget the values of partitions this worker lost (what was sent is the next
        owner's; what was not, the next owner makes again from the uncommitted input)."""
        for layer in (self._dirty, self._sent, self._acked):
            for partition in partitions:
                layer.pop(partition, None)

    def cached(self) -> set[int]:
        """The partitions with values set or sent and not stored yet."""
        return {*self._dirty, *self._sent, *self._acked}

    def pending_writes(self) -> int:
        return sum(len(v) for v in self._dirty.values()) + sum(len(v) for v in self._sent.values())


def write_sent(app: Any) -> int:
    """Step 3 for every write-back table of the app."""
    return sum(t.write_sent() for t in list(app.tables.values()) if isinstance(t, Table))


def cached_partitions(app: Any) -> set[int]:
    """The partitions with values not stored yet, in any write-back table of the app."""
    return {p for t in list(app.tables.values()) if isinstance(t, Table) for p in t.cached()}


def drop_partitions(app: Any, lost: set[int]) -> None:
    for table in list(app.tables.values()):
        if isinstance(table, Table):
            table.drop_partitions(lost)

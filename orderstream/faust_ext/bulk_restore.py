"""Bulk restore: a table partition far behind its changelog is read in bulk, not record by record.

Faust replays a changelog through its own consumer: per record a message, an event, a queue put
and get, a buffer (about 20,000 records/s on this machine, see docs/scaling.md). When a worker
starts with an empty data directory, or a partition moves to it, the table may be millions of
records behind. For each active changelog partition at least `ORDERSTREAM_RECOVERY_BULK_MIN`
records behind, a plain Kafka consumer of its own (no group) reads from Faust's start offset to
the highwater Faust measured, and each fetched run of records is written to the partition's
RocksDB database as one write batch: the same keys and value bytes, deletes for tombstones, in
offset order, as Faust's `apply_changelog_batch` writes, with the persisted offset in the same
batch (a crash in between loses nothing: the next start reads on from that offset, and writing a
record again is harmless). Faust's recovery then starts from the offset reached and finds nothing,
or the little that was left, to do.

The restore runs inside Faust's recovery step, which gives up on the whole recovery service when
the step outlasts `broker_request_timeout`; so it stops at `TIME_SHARE` of that and leaves the rest
to Faust's own path. A rebalance or a stop also ends it early, with what was written kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from rocksdict import WriteBatch

from orderstream.kafka.auth import client_options
from orderstream.settings import Settings

log = logging.getLogger(__name__)

TIME_SHARE = 0.5  # of Faust's broker_request_timeout
FETCH_RECORDS = 20_000  # records per getmany
PARTITION_FETCH_BYTES = 2 * 1024 * 1024  # 8 MB: no faster, +150 MB RSS

Apply = Callable[[TopicPartition, list[ConsumerRecord[bytes, bytes]]], None]


class Store(Protocol):
    """What is used of Faust's RocksDB store."""

    offset_key: bytes

    def _db_for_partition(self, partition: int) -> Any: ...

    def set_persisted_offset(self, tp: Any, offset: int) -> None: ...


@dataclass(frozen=True)
class Span:
    start: int  # first offset to read
    end: int  # first offset not to read (Faust's highwater + 1)


def spans_behind(
    tps: Iterable[Any],
    offsets: Mapping[Any, int | None],
    highwaters: Mapping[Any, int | None],
    min_behind: int,
) -> dict[TopicPartition, Span]:
    """The partitions worth a bulk read, from Faust's offsets (last applied, -1 or None: none)
    and highwaters (last offset in the changelog)."""
    spans = {}
    for tp in tps:
        high = highwaters.get(tp)
        last = offsets.get(tp)
        last = -1 if last is None else last
        if high is not None and min_behind > 0 and high - last >= min_behind:
            spans[TopicPartition(tp.topic, tp.partition)] = Span(last + 1, high + 1)
    return spans


def behind(
    spans: Mapping[TopicPartition, Span], reached: Mapping[TopicPartition, int] | None = None
) -> int:
    """Records (offsets) left to read, from the start of each span or from `reached`."""
    return sum(s.end - (reached[tp] if reached else s.start) for tp, s in spans.items())


async def read_spans(
    consumer: AIOKafkaConsumer,
    spans: Mapping[TopicPartition, Span],
    apply: Apply,
    keep_going: Callable[[], bool],
) -> dict[TopicPartition, int]:
    """Reads every partition from its start to its end, handing `apply` each fetched run of
    records in offset order; the next offset reached per partition (the end when done)."""
    consumer.assign(list(spans))
    reached = {}
    for tp, span in spans.items():
        consumer.seek(tp, span.start)
        reached[tp] = span.start
    remaining = {tp for tp, span in spans.items() if span.start < span.end}
    while remaining and keep_going():
        fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=FETCH_RECORDS)
        for tp, records in fetched.items():
            end = spans[tp].end
            if records[-1].offset >= end:
                records = [r for r in records if r.offset < end]
            if records:
                apply(tp, records)
                reached[tp] = records[-1].offset + 1
        for tp in list(remaining):
            position = await consumer.position(tp)  # past compacted gaps and control records
            if position >= spans[tp].end:
                reached[tp] = spans[tp].end
                remaining.discard(tp)
            elif tp not in fetched:
                reached[tp] = max(reached[tp], position)
    return reached


def store_writer(stores: Mapping[TopicPartition, Store]) -> Apply:
    """Writes a run of changelog records and the last one's offset as one RocksDB write batch."""

    def apply(tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        store = stores[tp]
        batch = WriteBatch(raw_mode=True)
        for record in records:
            if record.key is None:
                continue
            if record.value is None:
                batch.delete(record.key)
            else:
                batch.put(record.key, record.value)
        batch.put(store.offset_key, str(records[-1].offset).encode())
        store._db_for_partition(tp.partition).write(batch)

    return apply


async def restore(
    settings: Settings,
    spans: Mapping[TopicPartition, Span],
    apply: Apply,
    keep_going: Callable[[], bool],
    read_committed: bool = False,
) -> dict[TopicPartition, int]:
    """`read_spans` with a consumer of its own, closed afterwards."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        fetch_max_bytes=4 * PARTITION_FETCH_BYTES,
        **client_options(settings),
    )
    await consumer.start()
    try:
        return await read_spans(consumer, spans, apply, keep_going)
    finally:
        try:
            await consumer.stop()
        except asyncio.CancelledError:
            # aiokafka 0.14: stop() right after assign() awaits a task of its own it cancelled
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise


async def catch_up(
    recovery: Any, settings: Settings, tps: Iterable[Any], offsets: MutableMapping[Any, int]
) -> int:
    """Faust's Recovery, after it built the active offsets: bulk-read the partitions far behind
    and move their offsets on. The number of records written."""
    spans = spans_behind(tps, offsets, recovery.active_highwaters, settings.recovery_bulk_min)
    stores = {tp: recovery.tp_to_table[tp].data for tp in spans}
    spans = {tp: span for tp, span in spans.items() if hasattr(stores[tp], "offset_key")}
    if not spans:  # (or not RocksDB: memory:// tables are left to Faust)
        return 0
    deadline = time.monotonic() + TIME_SHARE * float(recovery.app.conf.broker_request_timeout)
    written = 0
    apply_batch = store_writer(stores)

    def apply(tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        nonlocal written
        apply_batch(tp, records)
        offsets[tp] = records[-1].offset  # Faust's offsets: the last applied
        written += len(records)

    def keep_going() -> bool:
        return (
            not recovery.should_stop
            and not recovery.signal_recovery_start.is_set()
            and time.monotonic() < deadline
        )

    log.info("bulk restore: reading %d records of %d partitions", behind(spans), len(spans))
    started = time.monotonic()
    in_transaction = bool(recovery.app.in_transaction)
    reached = await restore(settings, spans, apply, keep_going, read_committed=in_transaction)
    for tp, position in reached.items():
        if position - 1 > offsets[tp]:  # nothing left but gaps: Faust need not read them
            offsets[tp] = position - 1
            stores[tp].set_persisted_offset(tp, position - 1)
    took = time.monotonic() - started
    left = behind(spans, reached)
    log.info(
        "bulk restore: %d records into %d partitions in %.2f s (%.0f records/s), %d left to Faust",
        written,
        len(spans),
        took,
        written / took if took > 0 else 0.0,
        left,
    )
    return written

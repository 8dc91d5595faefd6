"""Bulk restore: a table partition far behind its changelog is read in bulk, not record by record.

Faust replays a changelog through its own consumer: per record a message, an event, a queue put
and get, a buffer (about 20,000 records/s on this machine, see docs/scaling.md). When a worker
starts with an empty data directory, or a partition moves to it, the table may be millions of
records behind. For each active changelog partition at least `ORDERSTREAM_RECOVERY_BULK_MIN`
records behind, the restore fetches from Faust's start offset to the highwater Faust measured
with Kafka fetch requests of its own (a client, no consumer and no group: aiokafka's consumer
makes a Python record object per record, the largest cost of a restore) and writes each fetched
run of records to the partition's RocksDB database as one write batch: the same keys and value
bytes, deletes for tombstones, in offset order, as Faust's `apply_changelog_batch` writes, with
the persisted offset in the same batch. Control records and, reading committed, aborted
transactions are skipped as a consumer skips them; every batch's CRC is checked.

The batches skip RocksDB's write-ahead log, and every database written is flushed (its memtables
to its files) before Faust goes on, whatever ended the restore. A crash before that flush loses
a suffix of what was written, never a part of a batch: a database keeps its writes in order, and
the persisted offset travels with its records, so the next start reads on from the offset that
survived (writing a record again is harmless). Faust's recovery then starts from the offset
reached and finds nothing, or the little that was left, to do.

The restore runs inside Faust's recovery step, which gives up on the whole recovery service when
the step outlasts `broker_request_timeout`; so it stops at `TIME_SHARE` of that and leaves the rest
to Faust's own path. A rebalance or a stop also ends it early, with what was written kept; so
does a partition the fetch cannot read on (an error that is not retriable, no progress).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.control_record import ABORT_MARKER, ControlRecord
from aiokafka.record.memory_records import MemoryRecords
from rocksdict import WriteBatch, WriteOptions

from orderstream.kafka import metadata_guard
from orderstream.kafka.auth import client_options
from orderstream.settings import Settings

log = logging.getLogger(__name__)

TIME_SHARE = 0.5  # of Faust's broker_request_timeout
PARTITION_FETCH_BYTES = 2 * 1024 * 1024  # per partition and fetch
FETCH_BYTES = 8 * 1024 * 1024  # per fetch (one per broker at a time)
FETCH_WAIT_MS = 100  # the broker's wait for data (none is expected: the spans end in the log)
RETRY_BACKOFF_S = 0.2  # after a retriable error (a leader moved, a connection lost)
READ_UNCOMMITTED, READ_COMMITTED = 0, 1


class Record(Protocol):
    """A changelog record as fetched (aiokafka's record in a batch)."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


Apply = Callable[[TopicPartition, Sequence[Record]], None]


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


@dataclass
class Fetched:
    """One partition's part of a fetch response, read from `start` up to `end`."""

    records: list[Record]
    next_offset: int  # where the next fetch starts: past control records and compacted gaps


def unpack(
    data: bytes,
    start: int,
    end: int,
    aborted: Sequence[tuple[int, int]] | None = None,
    read_committed: bool = False,
) -> Fetched:
    """The records of one partition's fetched bytes with offsets in [start, end), as a consumer
    hands them over: CRC checked, control batches skipped, and reading committed, the batches of
    aborted transactions (`aborted`: the response's (producer id, first offset) list) skipped.
    aiokafka's consumer does the same in `PartitionRecords._unpack_records`."""
    batches = MemoryRecords(data)
    pending = sorted(aborted or (), key=lambda a: a[1])
    aborting: set[int] = set()
    records: list[Record] = []
    next_offset = start
    while batches.has_next():
        batch = batches.next_batch()
        if batch is None:  # the response's last batch, cut off by the size limit
            break
        if not batch.validate_crc():
            raise kafka_errors.CorruptRecordException(f"invalid CRC at offset {batch.base_offset}")
        if read_committed and batch.producer_id is not None:
            while pending and pending[0][1] <= batch.base_offset:
                aborting.add(pending.pop(0)[0])
            if batch.is_control_batch and ControlRecord.parse(next(batch).key) == ABORT_MARKER:
                aborting.discard(batch.producer_id)
            elif batch.is_transactional and batch.producer_id in aborting:
                next_offset = max(next_offset, batch.next_offset)
                continue
        if not batch.is_control_batch:
            for record in batch:
                offset = record.offset
                if offset >= end:
                    break
                if offset >= start:
                    records.append(record)
        next_offset = max(next_offset, batch.next_offset)
        if next_offset >= end:
            break
    return Fetched(records, min(next_offset, end))


async def read_spans(
    client: AIOKafkaClient,
    spans: Mapping[TopicPartition, Span],
    apply: Apply,
    keep_going: Callable[[], bool],
    read_committed: bool = False,
) -> dict[TopicPartition, int]:
    """Reads every partition from its start to its end, handing `apply` each fetched run of
    records in offset order; the next offset reached per partition (the end when done, less
    where a partition could not be read on: the rest is left to Faust)."""
    reached = {tp: span.start for tp, span in spans.items()}
    remaining = {tp for tp, span in spans.items() if span.start < span.end}
    await client.set_topics(sorted({tp.topic for tp in spans}))
    while remaining and keep_going():
        pause = False  # after a retriable error: refresh the metadata, wait, then again
        by_leader: dict[int, list[TopicPartition]] = defaultdict(list)
        for tp in remaining:
            leader = client.cluster.leader_for_partition(tp)
            if leader is None or leader < 0:  # no leader known: read the others meanwhile
                pause = True
            else:
                by_leader[leader].append(tp)
        answers = await asyncio.gather(
            *(_fetch(client, node, tps, reached, read_committed) for node, tps in by_leader.items())
        )
        if None in answers:  # a fetch's connection failed (logged)
            pause = True
        for tp, error, data, aborted, readable in chain.from_iterable(filter(None, answers)):
            if error is not kafka_errors.NoError:
                if error.retriable or error.invalid_metadata:
                    pause = True
                else:
                    log.warning("bulk restore: %s: %s; left to Faust", tp, error.__name__)
                    remaining.discard(tp)
                continue
            end = spans[tp].end
            fetched = unpack(data, reached[tp], end, aborted, read_committed)
            if fetched.records:
                apply(tp, fetched.records)
            if fetched.next_offset <= reached[tp]:
                # no records: the response was full before this partition's turn, or there is
                # nothing to read below its end (reading committed: an open transaction)
                if reached[tp] >= readable:
                    remaining.discard(tp)
                continue
            reached[tp] = fetched.next_offset
            if reached[tp] >= end:
                remaining.discard(tp)
        if pause and remaining:
            client.force_metadata_update()
            await asyncio.sleep(RETRY_BACKOFF_S)
    return reached


# per partition: the error's type, the records' bytes, the aborted transactions, and where the
# readable records end (the high watermark; reading committed, the last stable offset)
Answer = list[tuple[TopicPartition, Any, bytes, Any, int]]


async def _fetch(
    client: AIOKafkaClient,
    node: int,
    tps: list[TopicPartition],
    positions: Mapping[TopicPartition, int],
    read_committed: bool,
) -> Answer | None:
    """One fetch request to a broker for its partitions; None when it failed."""
    by_topic: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for tp in tps:
        by_topic[tp.topic].append((tp.partition, positions[tp], PARTITION_FETCH_BYTES))
    isolation = READ_COMMITTED if read_committed else READ_UNCOMMITTED
    request = FetchRequest(FETCH_WAIT_MS, 1, FETCH_BYTES, isolation, list(by_topic.items()))
    try:
        response = await client.send(node, request)
    except kafka_errors.KafkaError as exc:
        log.warning("bulk restore: a fetch from broker %s failed: %r", node, exc)
        return None
    answer: Answer = []
    for topic, partitions in response.topics:
        for partition, error_code, highwater, *data in partitions:
            version = response.API_VERSION
            aborted = _aborted(version, data)
            readable = data[0] if read_committed and version >= 4 else highwater
            tp = TopicPartition(topic, partition)
            answer.append((tp, kafka_errors.for_code(error_code), data[-1], aborted, readable))
    return answer


def _aborted(version: int, data: list[Any]) -> Any:
    """The aborted transactions in a fetch response's partition data, by its version:
    v4 [last stable offset, aborted, records], v5-v10 [lso, log start offset, aborted, records],
    v11 [lso, log start offset, aborted, preferred read replica, records]."""
    if version >= 11:
        return data[2]
    return data[-2] if version >= 4 else None


class StoreWriter:
    """Writes a run of changelog records and the last one's offset as one RocksDB write batch,
    past the write-ahead log; `flush` makes what was written durable."""

    def __init__(self, stores: Mapping[TopicPartition, Store]) -> None:
        self.stores = stores
        self.options = WriteOptions()
        # a property at run time; rocksdict's stub declares a method
        self.options.disable_wal = True  # type: ignore[method-assign,assignment]
        self.written: dict[int, Any] = {}  # id -> database written since the last flush

    def __call__(self, tp: TopicPartition, records: Sequence[Record]) -> None:
        store = self.stores[tp]
        batch = WriteBatch(raw_mode=True)
        for record in records:
            if record.key is None:
                continue
            if record.value is None:
                batch.delete(record.key)
            else:
                batch.put(record.key, record.value)
        batch.put(store.offset_key, str(records[-1].offset).encode())
        db = store._db_for_partition(tp.partition)
        db.write(batch, self.options)
        self.written[id(db)] = db

    def flush(self) -> None:
        """Every database written: its memtables to its files (what the log would have kept)."""
        for db in self.written.values():
            db.flush()
        self.written.clear()


async def restore(
    settings: Settings,
    spans: Mapping[TopicPartition, Span],
    apply: Apply,
    keep_going: Callable[[], bool],
    read_committed: bool = False,
) -> dict[TopicPartition, int]:
    """`read_spans` with a client of its own, closed afterwards."""
    client = AIOKafkaClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.app_id}-bulk-restore",
        **client_options(settings),
    )
    metadata_guard.guard(client, "bulk-restore")
    await client.bootstrap()
    try:
        return await read_spans(client, spans, apply, keep_going, read_committed)
    finally:
        await client.close()


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
    writer = StoreWriter(stores)

    def apply(tp: TopicPartition, records: Sequence[Record]) -> None:
        nonlocal written
        writer(tp, records)
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
    try:
        reached = await restore(settings, spans, apply, keep_going, read_committed=in_transaction)
    finally:
        writer.flush()  # before anything of Faust's writes these databases again
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

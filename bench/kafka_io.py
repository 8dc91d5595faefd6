"""Kafka reads and writes of the harness: end offsets, record timestamps, bulk preloads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from bench.errors import BenchError
from orderstream.kafka.reader import partitions_of

PRELOAD_BATCH_BYTES = 1024 * 1024
MARKER_ROOM = 64  # offsets read back from a partition's end to find its last record

# Stamped by the broker on append: for outputs of clients that copy the input's timestamp.
BROKER_TIME = {"message.timestamp.type": "LogAppendTime"}


@asynccontextmanager
async def probe(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer used only for metadata, offsets and point reads."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",  # what a downstream consumer sees
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    tps: list[TopicPartition] = []
    for name in topics:
        tps += [TopicPartition(name, p) for p in sorted(await partitions_of(consumer, name))]
    return tps


async def end_offsets(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> dict[str, int]:
    """Records ever written per topic (the sum of its partitions' end offsets)."""
    names = list(topics)
    tps = await _partitions(consumer, names)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps) if tps else {}
    totals = dict.fromkeys(names, 0)
    for tp, end in ends.items():
        totals[tp.topic] += end
    return totals


async def edge_timestamps(
    consumer: AIOKafkaConsumer, topics: Iterable[str], since: float | None = None
) -> tuple[float, float] | None:
    """(earliest, latest) record timestamps over the topics, in epoch seconds; None if empty.
    `since` (epoch seconds): only the records from then on.

    Reads only the first and last record of every partition (timestamps are set by the one
    producer writing each partition, so they grow along it).
    """
    tps = await _partitions(consumer, topics)
    ends = await consumer.end_offsets(tps) if tps else {}
    begins = await consumer.beginning_offsets(tps) if tps else {}
    if since is not None and tps:
        at = await consumer.offsets_for_times(dict.fromkeys(tps, int(since * 1000)))
        begins = {tp: at[tp].offset if at[tp] is not None else ends[tp] for tp in tps}
    filled = [tp for tp in tps if ends[tp] > begins[tp]]
    if not filled:
        return None
    consumer.assign(filled)
    first = await _first_records(consumer, {tp: begins[tp] for tp in filled})
    last = await _last_records(consumer, {tp: (begins[tp], ends[tp]) for tp in filled})
    stamps = [float(r.timestamp) / 1000.0 for r in [*first.values(), *last.values()]]
    return min(stamps), max(stamps)


async def _last_records(
    consumer: AIOKafkaConsumer, spans: dict[TopicPartition, tuple[int, int]]
) -> dict[TopicPartition, Any]:
    """The last record before the end of every (assigned) partition. Not simply the one at
    end - 1: with transactions (exactly-once mode) the last offsets are commit markers."""
    for tp, (begin, end) in spans.items():
        consumer.seek(tp, max(begin, end - MARKER_ROOM))
    found: dict[TopicPartition, Any] = {}
    done: set[TopicPartition] = set()
    deadline = time.monotonic() + 30
    while len(done) < len(spans):
        if time.monotonic() > deadline:
            missing = [f"{tp.topic}[{tp.partition}]" for tp in spans if tp not in done]
            raise BenchError(f"no last record of {missing} within 30 s")
        batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
        for tp, records in batch.items():
            if records:
                found[tp] = records[-1]
        for tp, (_, end) in spans.items():
            if tp not in done and tp in found and await consumer.position(tp) >= end:
                done.add(tp)
                consumer.pause(tp)
    consumer.resume(*spans)
    return found


async def _first_records(
    consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]
) -> dict[TopicPartition, Any]:
    """The record at the given offset of every (assigned) partition."""
    for tp, offset in offsets.items():
        consumer.seek(tp, offset)
    found: dict[TopicPartition, Any] = {}
    deadline = time.monotonic() + 30
    while len(found) < len(offsets):
        if time.monotonic() > deadline:
            missing = [f"{tp.topic}[{tp.partition}]" for tp in offsets if tp not in found]
            raise BenchError(f"no record at the expected offsets of {missing} within 30 s")
        batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
        for tp, records in batch.items():
            if tp not in found and records:
                found[tp] = records[0]
                consumer.pause(tp)
    consumer.resume(*offsets)
    return found


async def read_all(consumer: AIOKafkaConsumer, topic: str) -> list[Any]:
    """Every record of a topic, from its beginning to its end offsets at call time."""
    tps = await _partitions(consumer, [topic])
    ends = await consumer.end_offsets(tps)
    remaining = {tp for tp in tps if ends[tp] > 0}
    records: list[Any] = []
    if not remaining:
        return records
    consumer.assign(list(remaining))
    await consumer.seek_to_beginning(*remaining)
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
        for tp, msgs in batch.items():
            records.extend(r for r in msgs if r.offset < ends[tp])
        # By position, not by the last record's offset: a transaction's commit marker takes an
        # offset, and no consumer receives it (a topic exactly-once workers wrote ends in one)
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    return records


async def wait_for_records(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    timeout_s: float,
    alive: Callable[[], bool],
    on_poll: Callable[[], object] | None = None,
    label: str = "",
    stall_s: float | None = None,
) -> None:
    """Until `count` records are on the topic. `alive()` False (the process under test died)
    aborts early, and so does no new record for `stall_s` seconds (when given); `on_poll()`
    runs after every check (about 5 times a second)."""
    deadline = time.monotonic() + timeout_s
    last_note = time.monotonic()
    last_have, last_growth = -1, time.monotonic()
    async with probe(bootstrap) as consumer:
        while True:
            have = (await end_offsets(consumer, [topic]))[topic]
            if on_poll is not None:
                on_poll()
            if have >= count:
                return
            if not alive():
                raise BenchError(f"{label}: the process under test exited at {have}/{count}")
            now = time.monotonic()
            if now > deadline:
                raise BenchError(f"{label}: {have}/{count} on {topic} after {timeout_s:.0f}s")
            if have != last_have:
                last_have, last_growth = have, now
            elif stall_s is not None and now - last_growth > stall_s:
                raise BenchError(f"{label}: stuck at {have}/{count} on {topic} for {stall_s:.0f}s")
            if now - last_note >= 10:
                print(f"    {label}: {have}/{count}", flush=True)
                last_note = now
            await asyncio.sleep(0.2)


async def consumed_topics(bootstrap: str, group: str) -> set[str]:
    """The topics a consumer group reads: those it has committed offsets for."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.topic for tp in committed}


async def wait_writable(bootstrap: str, topics: Iterable[str], timeout_s: float = 30.0) -> None:
    """Until every partition of the topics has a leader that answers (fresh topics need a moment;
    writing earlier only earns retries and warnings)."""
    names = list(topics)
    deadline = time.monotonic() + timeout_s
    async with probe(bootstrap) as consumer:
        while True:
            metadata = await consumer._client.fetch_all_metadata()
            parts = {n: metadata.partitions_for_topic(n) for n in names}
            tps = [TopicPartition(n, p) for n, ps in parts.items() for p in ps or ()]
            led = all(ps for ps in parts.values()) and all(
                (metadata.leader_for_partition(tp) or -1) >= 0 for tp in tps
            )
            if led:
                try:
                    await consumer.end_offsets(tps)
                    return
                except KafkaError:
                    pass
            if time.monotonic() > deadline:
                raise BenchError(f"topics {names} have no leaders after {timeout_s:.0f}s")
            await asyncio.sleep(0.1)


async def create_topics(
    bootstrap: str, names: Iterable[str], partitions: int, configs: dict[str, str] | None = None
) -> None:
    """Create topics (harness-only ones, or registry ones with extra configs) and wait until
    they take writes."""
    names = list(names)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, partitions, 1, topic_configs=dict(configs or {})) for n in names]
        )
    finally:
        await admin.close()
    await wait_writable(bootstrap, names)


async def preload(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Write records (key, value) in large batches, partitioned like the Java client; count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_batch_size=PRELOAD_BATCH_BYTES
    )
    await producer.start()
    try:
        parts = sorted(await producer.partitions_for(topic))
        partitioner = DefaultPartitioner()
        batches = {p: producer.create_batch() for p in parts}
        pending: list[asyncio.Future[Any]] = []
        sent = 0
        for key, value in records:
            p = partitioner(key, parts, parts)
            if batches[p].append(key=key, value=value, timestamp=None) is None:
                pending.append(await producer.send_batch(batches[p], topic, partition=p))
                batches[p] = producer.create_batch()
                batches[p].append(key=key, value=value, timestamp=None)
            sent += 1
        for p, batch in batches.items():
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*pending)
        return sent
    finally:
        await producer.stop()

"""The bulk restore reader against a real broker, into real RocksDB databases
(orderstream/faust_ext/bulk_restore.py). A worker using it end to end:
tests/integration/test_pipeline.py (wiped data directory)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from rocksdict import Options, Rdict

from devtools.broker import LocalBroker
from orderstream.faust_ext import bulk_restore
from orderstream.faust_ext.bulk_restore import Span, StoreWriter, restore
from orderstream.settings import Settings
from tests.integration.conftest import create_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

OFFSET_KEY = b"__faust\0offset__"
Record = tuple[int, bytes, bytes | None]  # partition, key, value (None: a tombstone)


class RocksStore:
    """Faust's RocksDB store as the restore sees it: one database per partition."""

    offset_key = OFFSET_KEY

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dbs: dict[int, Rdict] = {}

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            self.dbs[partition] = Rdict(str(self.root / f"p{partition}"), Options(raw_mode=True))
        return self.dbs[partition]

    def contents(self, partition: int) -> dict[bytes, bytes]:
        return {
            cast(bytes, k): cast(bytes, v) for k, v in self._db_for_partition(partition).items()
        }

    def close(self) -> None:
        for db in self.dbs.values():
            db.close()


async def _changelog(bootstrap: str, topic: str, records: list[Record]) -> None:
    await create_topic(bootstrap, topic, 2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value, key=key, partition=p) for p, key, value in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _history(n: int) -> list[Record]:
    """n writes over n // 10 keys per partition, every 7th a delete (tombstone)."""
    out: list[Record] = []
    for i in range(n):
        key = f"k{i % (n // 10)}".encode()
        out.append((i % 2, key, None if i % 7 == 0 else f"v{i}".encode()))
    return out


def _latest(records: list[Record], partition: int) -> dict[bytes, bytes]:
    state: dict[bytes, bytes | None] = {}
    for p, key, value in records:
        if p == partition:
            state[key] = value
    return {k: v for k, v in state.items() if v is not None}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RocksStore]:
    db = RocksStore(tmp_path)
    yield db
    db.close()


def _given_changelog(kafka: LocalBroker, n: int) -> tuple[Settings, str, list[Record]]:
    """A new two-partition changelog topic holding `_history(n)`."""
    settings = Settings(broker=f"kafka://{kafka.bootstrap}")
    topic = f"bulk-{uuid.uuid4().hex[:8]}"
    records = _history(n)
    asyncio.run(_changelog(kafka.bootstrap, topic, records))
    return settings, topic, records


def _restore(
    settings: Settings, spans: dict[TopicPartition, Span], store: RocksStore, **kw: Any
) -> dict[TopicPartition, int]:
    writer = StoreWriter(dict.fromkeys(spans, store))
    keep_going = kw.get("keep_going", lambda: True)
    try:
        return asyncio.run(
            restore(settings, spans, writer, keep_going, kw.get("read_committed", False))
        )
    finally:
        writer.flush()


def test_restores_the_latest_value_of_every_key_and_the_offset(
    kafka: LocalBroker, store: RocksStore
) -> None:
    # Given a changelog of 20,000 writes (overwrites and tombstones) in two partitions
    settings, topic, records = _given_changelog(kafka, 20_000)
    tps = [TopicPartition(topic, p) for p in (0, 1)]
    # When both partitions are read from the start to their end
    reached = _restore(settings, {tp: Span(0, 10_000) for tp in tps}, store)
    # Then each database holds exactly the latest value of every key, deleted keys absent,
    # and the offset of the last record written
    assert reached == {tp: 10_000 for tp in tps}
    for p in (0, 1):
        contents = store.contents(p)
        assert contents.pop(OFFSET_KEY) == b"9999"
        assert contents == _latest(records, p)
        assert len(contents) < 1000  # tombstones removed keys


def test_reads_only_its_span_and_writing_again_changes_nothing(
    kafka: LocalBroker, store: RocksStore
) -> None:
    # Given a changelog, and a database restored up to offset 4,000 of partition 0
    settings, topic, records = _given_changelog(kafka, 20_000)
    tp = TopicPartition(topic, 0)
    _restore(settings, {tp: Span(0, 4_000)}, store)
    first = [r for r in records if r[0] == 0][:4_000]
    assert store.contents(0) == {**_latest(first, 0), OFFSET_KEY: b"3999"}
    # When the restore goes on from an offset before the one reached (a replay), to the end
    reached = _restore(settings, {tp: Span(3_500, 10_000)}, store)
    # Then the result is the same as one clean pass
    assert reached == {tp: 10_000}
    assert store.contents(0) == {**_latest(records, 0), OFFSET_KEY: b"9999"}
    assert not store.contents(1)  # the other partition untouched


def test_a_partition_left_out_of_a_full_response_is_read_in_the_next(
    kafka: LocalBroker, store: RocksStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a changelog of two partitions, and fetch responses so small that the first
    # partition's records fill each of them (the broker answers the second with no records)
    settings, topic, records = _given_changelog(kafka, 20_000)
    monkeypatch.setattr(bulk_restore, "PARTITION_FETCH_BYTES", 16 * 1024)
    monkeypatch.setattr(bulk_restore, "FETCH_BYTES", 16 * 1024)
    tps = [TopicPartition(topic, p) for p in (0, 1)]
    # When both are restored
    reached = _restore(settings, {tp: Span(0, 10_000) for tp in tps}, store)
    # Then both are read to their end
    assert reached == {tp: 10_000 for tp in tps}
    for p in (0, 1):
        assert store.contents(p) == {**_latest(records, p), OFFSET_KEY: b"9999"}


def test_a_stop_before_reading_writes_nothing(kafka: LocalBroker, store: RocksStore) -> None:
    # Given a changelog, and a rebalance signalled before the restore's first fetch
    settings, topic, _ = _given_changelog(kafka, 2_000)
    tp = TopicPartition(topic, 0)
    reached = _restore(settings, {tp: Span(200, 1_000)}, store, keep_going=lambda: False)
    # Then it reports where it stands (its start) and leaves the database alone
    assert reached == {tp: 200}
    assert store.contents(0) == {}


def _restore_then_die(settings: Settings, spans: dict[TopicPartition, Span], root: Path) -> None:
    """In a child process: restore, then exit at once, as a kill would (no close of the
    databases, which would flush them, no destructors)."""
    store = RocksStore(root)
    _restore(settings, spans, store)
    os._exit(0 if store.dbs else 1)


def test_what_was_restored_survives_a_crash_right_after(kafka: LocalBroker, tmp_path: Path) -> None:
    # Given a changelog, restored by a process that dies the moment the restore returns (the
    # batches skip RocksDB's write-ahead log: only the flush makes them durable)
    settings, topic, records = _given_changelog(kafka, 20_000)
    spans = {TopicPartition(topic, p): Span(0, 10_000) for p in (0, 1)}
    child = multiprocessing.get_context("spawn").Process(
        target=_restore_then_die, args=(settings, spans, tmp_path)
    )
    child.start()
    child.join(120)
    assert child.exitcode == 0
    # When the databases are opened again
    store = RocksStore(tmp_path)
    try:
        # Then they hold everything the restore wrote, and its offsets
        for p in (0, 1):
            assert store.contents(p) == {**_latest(records, p), OFFSET_KEY: b"9999"}
    finally:
        store.close()


async def _transactional_changelog(bootstrap: str, topic: str) -> int:
    """Three transactions into partition 0 of a new topic, the second aborted; the offset
    after the last record (its commit marker)."""
    await create_topic(bootstrap, topic, 1)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"bulk-{uuid.uuid4().hex[:8]}"
    )
    await producer.start()
    try:
        for txn, commit in (("a", True), ("b", False), ("c", True)):
            await producer.begin_transaction()
            for i in range(3):
                await producer.send_and_wait(topic, f"{txn}{i}".encode(), key=f"{txn}{i}".encode())
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()
    return 12  # 3 x (3 records + 1 marker)


@pytest.mark.parametrize("read_committed", [True, False])
def test_a_transactional_changelog_is_read_as_a_consumer_reads_it(
    kafka: LocalBroker, store: RocksStore, read_committed: bool
) -> None:
    # Given a changelog written in transactions, one of them aborted
    settings = Settings(broker=f"kafka://{kafka.bootstrap}")
    topic = f"bulk-txn-{uuid.uuid4().hex[:8]}"
    end = asyncio.run(_transactional_changelog(kafka.bootstrap, topic))
    tp = TopicPartition(topic, 0)
    # When it is restored, reading committed records only or all of them
    reached = _restore(settings, {tp: Span(0, end)}, store, read_committed=read_committed)
    # Then the commit and abort markers are no records of the table; the aborted
    # transaction's records are there only when reading uncommitted; the offset is the last
    # record's
    assert reached == {tp: end}
    kept = ["a", "c"] if read_committed else ["a", "b", "c"]
    expected = {f"{t}{i}".encode(): f"{t}{i}".encode() for t in kept for i in range(3)}
    assert store.contents(0) == {**expected, OFFSET_KEY: b"10"}

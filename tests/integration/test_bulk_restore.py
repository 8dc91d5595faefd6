"""The bulk restore reader against a real broker, into real RocksDB databases
(orderstream/faust_ext/bulk_restore.py). A worker using it end to end:
tests/integration/test_pipeline.py (wiped data directory)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from rocksdict import Options, Rdict

from devtools.broker import LocalBroker
from orderstream.faust_ext.bulk_restore import Span, restore, store_writer
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
    writer = store_writer(dict.fromkeys(spans, store))
    return asyncio.run(restore(settings, spans, writer, kw.get("keep_going", lambda: True)))


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


def test_a_stop_before_reading_writes_nothing(kafka: LocalBroker, store: RocksStore) -> None:
    # Given a changelog, and a rebalance signalled before the restore's first fetch
    settings, topic, _ = _given_changelog(kafka, 2_000)
    tp = TopicPartition(topic, 0)
    reached = _restore(settings, {tp: Span(200, 1_000)}, store, keep_going=lambda: False)
    # Then it reports where it stands (its start) and leaves the database alone
    assert reached == {tp: 200}
    assert store.contents(0) == {}

"""The saga's stock commits kept back for the flush before each offset commit, then sent as one
record per partition of inventory-requests: what goes out, where, and in which order."""

from __future__ import annotations

from typing import Any

import pytest

from orderstream.contracts.events import (
    MAX_EVENT_BYTES,
    CommitStock,
    CommitStockBatch,
    StockLine,
    decode,
    utcnow,
)
from orderstream.faust_ext import producer
from orderstream.kafka.partitioner import key_hash
from orderstream.worker import commit_batches
from orderstream.worker.app import app, settings

pytestmark = pytest.mark.asyncio

PARTITIONS = settings.partitions


def commit(order: str, sku: str) -> CommitStock:
    return CommitStock(
        eventId=f"CommitStock-{order}-{sku}",
        timestamp=utcnow(),
        data=StockLine(orderId=order, productId=sku, quantity=1, price=2.5),
    )


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every record handed to the producer: (topic, key, value, partition, headers)."""
    sent: list[tuple[Any, ...]] = []

    async def send(topic: str, key: bytes, value: bytes, partition: int, ts: Any, headers: Any):  # type: ignore[no-untyped-def]
        sent.append((topic, key, value, partition, headers))

    monkeypatch.setattr(app.producer, "send", send)
    commit_batches._pending.clear()
    return sent


async def flush() -> None:
    """What the producer's flush does with the kept commits (producer.kept_back)."""
    send = commit_batches.take()
    assert send is not None
    await send()


def home(sku: str) -> int:
    return key_hash(sku.encode()) % PARTITIONS


async def test_commits_go_out_at_the_flush_one_record_per_partition(
    records: list[tuple[Any, ...]],
) -> None:
    # Given commits of products on several partitions, two of them on one product
    skus = [f"SKU-{n}" for n in range(12)]
    commits = [commit(f"o-{n}", sku) for n, sku in enumerate(skus)] + [commit("o-99", skus[0])]
    assert len({home(s) for s in skus}) > 1
    for c in commits:
        commit_batches.add(c)
    assert records == []  # kept back until the flush

    # When the producer flushes (before an offset commit)
    assert commit_batches.take in producer.kept_back
    await flush()

    # Then each partition got one record, keyed by its first product, with its commits in order
    assert sorted(r[3] for r in records) == sorted({home(s) for s in skus})
    got: list[CommitStock] = []
    for topic, key, value, partition, _ in records:
        assert topic == commit_batches._TOPIC
        batch = decode(value, ("CommitStockBatch",))
        assert isinstance(batch, CommitStockBatch)
        assert key == batch.data.productId.encode() == batch.data.commits[0].data.productId.encode()
        assert {home(c.data.productId) for c in batch.data.commits} == {partition}
        got += batch.data.commits
    assert sorted(c.eventId for c in got) == sorted(c.eventId for c in commits)  # each once
    for partition in {home(s) for s in skus}:
        here = [c.eventId for c in commits if home(c.data.productId) == partition]
        assert [c.eventId for c in got if home(c.data.productId) == partition] == here

    # And a flush with nothing kept sends nothing
    records.clear()
    assert commit_batches.take() is None


async def test_a_large_batch_is_split(
    records: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commit_batches, "MAX_COMMITS", 2)
    for n in range(5):
        commit_batches.add(commit(f"o-{n}", "SKU-1"))

    await flush()

    sizes = [len(decode(r[2], ("CommitStockBatch",)).data.commits) for r in records]  # type: ignore[union-attr]
    assert sizes == [2, 2, 1]


async def test_no_record_is_larger_than_what_a_consumer_takes(
    records: list[tuple[Any, ...]],
) -> None:
    # Given more commits of one partition than fit in one record
    for n in range(1500):
        commit_batches.add(commit(f"order-with-a-long-id-{n:06d}", "SKU-1"))

    await flush()

    # Then they go out in several records, each within the size limit, all of them once
    assert len(records) > 1
    assert all(len(r[2]) <= MAX_EVENT_BYTES for r in records)
    decoded = [decode(r[2], ("CommitStockBatch",)) for r in records]
    assert sum(len(b.data.commits) for b in decoded) == 1500  # type: ignore[union-attr]

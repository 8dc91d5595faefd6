"""Write-through tables (orderstream/faust_ext/write_through.py) inside a real faust.App: each
write reaches the store at once, and its changelog record goes through the producer's buffer in
the order of the writes, to the producer's `send`; an acknowledged offset is persisted, a failed
one is not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from faust.streams import _current_event
from faust.types import TP

from orderstream.faust_ext import write_through
from orderstream.faust_ext.producer import ProducerBuffer
from orderstream.faust_ext.transport import broker_urls
from tests.unit.faust_ext.conftest import offline_app
from tests.unit.faust_ext.test_write_back import processing


@pytest.fixture
def app() -> Iterator[faust.App]:
    yield offline_app("write-through-test", write_through.Table)


class Producer:
    """The producer's send, as a ledger of every record (counted: a duplicate shows); the
    deliveries are settled by the test."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes | None, int]] = []
        self.deliveries: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int,
                   *_: Any) -> asyncio.Future[Any]:  # fmt: skip
        self.records.append((topic, key, value, partition))
        self.deliveries.append(asyncio.get_running_loop().create_future())
        return self.deliveries[-1]


def write(app: faust.App, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
    token = processing(app, partition)
    try:
        if value is None:
            del table[key]
        else:
            table[key] = value
    finally:
        _current_event.reset(token)


async def test_each_write_is_stored_at_once_and_its_record_sent_in_order(
    app: faust.App,
) -> None:
    table = cast(Any, app.Table("orders", key_type=bytes, value_type=bytes))
    buffer = cast(ProducerBuffer, app.producer.buffer)
    assert isinstance(buffer, ProducerBuffer)
    write(app, table, 1, b"o-1", b"RESERVING")
    write(app, table, 1, b"o-1", b"PAYING")
    write(app, table, 2, b"o-2", b"RESERVING")
    write(app, table, 2, b"o-2", None)
    # The store has each write at once; the records wait in the buffer, counted for its flush
    assert table.data.get(b"o-1") == b"PAYING" and table.data.get(b"o-2") is None
    assert buffer.put_count == 4 and buffer.sent_count == 0
    queued = [buffer.pending.get_nowait() for _ in range(4)]
    assert all(type(r) is write_through.ChangelogRecord for r in queued)
    # When the buffer's sender hands them on: each to the producer's send, in order
    producer = Producer()
    app.producer.send = producer.send  # type: ignore[method-assign]
    for record in queued:
        await buffer._send_pending(record)
    topic = table.changelog_topic.get_topic_name()
    assert producer.records == [
        (topic, b"o-1", b"RESERVING", 1),
        (topic, b"o-1", b"PAYING", 1),
        (topic, b"o-2", b"RESERVING", 2),
        (topic, b"o-2", None, 2),
    ]
    assert buffer.sent_count == 4


async def test_an_acknowledged_offset_is_persisted_and_a_failed_one_is_not(
    app: faust.App,
) -> None:
    table = cast(Any, app.Table("holds", key_type=bytes, value_type=bytes))
    persisted: list[tuple[TP, int]] = []
    table.data.set_persisted_offset = lambda tp, offset: persisted.append((tp, offset))
    producer = Producer()
    for key in (b"h-1", b"h-2"):
        write(app, table, 3, key, b"committed")
        await table.send_record(app.producer.buffer.pending.get_nowait(), producer)
    tp = TP(table.changelog_topic.get_topic_name(), 3)
    producer.deliveries[0].set_result(SimpleNamespace(topic_partition=tp, offset=41))
    producer.deliveries[1].set_exception(RuntimeError("not delivered"))
    await asyncio.sleep(0)  # the callbacks
    assert persisted == [(tp, 41)]


def test_exactly_once_takes_faust_s_own_way(app: faust.App, monkeypatch: Any) -> None:
    table = cast(Any, app.Table("orders", key_type=bytes, value_type=bytes))
    sent: list[Any] = []
    monkeypatch.setattr(faust.Table, "on_key_set", lambda self, k, v: sent.append((k, v)))
    monkeypatch.setattr(type(app), "in_transaction", property(lambda _: True))
    write(app, table, 0, b"o-1", b"PAYING")
    assert sent == [(b"o-1", b"PAYING")]
    assert app.producer.buffer.size == 0


@pytest.fixture(params=["memory", "rocksdb"])
def any_store_app(request: Any, tmp_path: Any) -> Iterator[faust.App]:
    if request.param == "memory":
        yield offline_app("write-through-raw", write_through.Table)
        return
    broker = broker_urls("kafka://127.0.0.1:1")
    yield faust.App(
        "write-through-raw", broker=broker, store="rocksdb://", datadir=str(tmp_path),
        Table=write_through.Table,
    )  # fmt: skip


async def test_raw_reads_and_writes_are_faust_s_get_and_set(any_store_app: faust.App) -> None:
    """`get_raw` / `put_raw` (what the model tables use) store, read and send exactly what
    Faust's `get` / `table[key] = value` do, whichever wrote and whichever reads."""
    app = any_store_app
    table = cast(Any, app.Table("orders", key_type=bytes, value_type=bytes))
    buffer = cast(ProducerBuffer, app.producer.buffer)
    token = processing(app, 1)
    try:
        assert table.get_raw(b"o-1") is None and table.get(b"o-1") is None
        table.put_raw(b"o-1", b"RESERVING")  # ours
        table[b"o-2"] = b"RESERVING"  # Faust's
        table.put_raw(b"o-1", b"PAYING")
        for key, value in ((b"o-1", b"PAYING"), (b"o-2", b"RESERVING")):
            assert table.get_raw(key) == value == table.get(key) == table[key]
        assert b"o-1" in table and table.get_raw(b"o-3") is None
    finally:
        _current_event.reset(token)
    queued = [buffer.pending.get_nowait() for _ in range(buffer.put_count)]
    assert [(r.key, r.value, r.partition) for r in queued] == [
        (b"o-1", b"RESERVING", 1),
        (b"o-2", b"RESERVING", 1),
        (b"o-1", b"PAYING", 1),
    ]
    app.tables.clear()


def test_raw_writes_in_exactly_once_mode_take_faust_s_way(app: faust.App, monkeypatch: Any) -> None:
    table = cast(Any, app.Table("orders", key_type=bytes, value_type=bytes))
    sent: list[Any] = []
    monkeypatch.setattr(faust.Table, "on_key_set", lambda self, k, v: sent.append((k, v)))
    monkeypatch.setattr(type(app), "in_transaction", property(lambda _: True))
    token = processing(app, 0)
    try:
        table.put_raw(b"o-1", b"PAYING")
        assert table.get_raw(b"o-1") == b"PAYING"
    finally:
        _current_event.reset(token)
    assert sent == [(b"o-1", b"PAYING")]
    assert app.producer.buffer.size == 0

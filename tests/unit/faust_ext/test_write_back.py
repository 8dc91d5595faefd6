"""Write-back tables (orderstream/faust_ext/write_back.py) inside a real faust.App: values set while
records are processed are read back at once, reach the changelog once per key per cycle (the
last value), and reach the store only after they were sent; a lost partition's are dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from faust.events import Event
from faust.streams import _current_event
from faust.tables import manager as faust_manager
from faust.transport.consumer import ConsumerMessage
from faust.types import TP

from orderstream.faust_ext import producer as producer_module
from orderstream.faust_ext import write_back
from orderstream.faust_ext.tables import TableManager
from tests.unit.faust_ext.conftest import offline_app


@pytest.fixture
def app() -> Iterator[faust.App]:
    yield offline_app("write-back-test", write_back.Table)


class Ref:
    def __init__(self, event: Event) -> None:
        self.event = event

    def __call__(self) -> Event:
        return self.event


def processing(app: faust.App, partition: int) -> Any:
    tp = TP("orders", partition)
    message = ConsumerMessage(tp.topic, partition, 1, 0.0, 0, [], b"k", b"v", 1, 1, tp=tp)
    return _current_event.set(Ref(Event(app, b"k", b"v", {}, message)))


class Changelog:
    """The producer's send, as a ledger of every record (counted: a duplicate shows)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None, int]] = []

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int,
                   *_: Any) -> asyncio.Future[Any]:  # fmt: skip
        self.records.append((key, value, partition))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(partition=partition, offset=len(self.records) - 1))
        return done


async def test_values_are_read_back_at_once_and_sent_and_stored_once_per_key_per_cycle(
    app: faust.App,
) -> None:
    table = cast(Any, app.Table("stock", key_type=bytes, value_type=bytes))
    assert isinstance(table, write_back.Table)
    changelog = Changelog()
    token = processing(app, 1)
    try:
        table[b"sku-1"] = b"10"
        table[b"sku-1"] = b"9"
        table[b"sku-1"] = b"8"
        table[b"sku-2"] = b"5"
        del table[b"sku-2"]
    finally:
        _current_event.reset(token)
    token = processing(app, 2)
    try:
        table[b"sku-3"] = b"1"
    finally:
        _current_event.reset(token)
    # Reads see the last values at once, outside a stream too (the web views)
    assert table[b"sku-1"] == b"8" and table.get(b"sku-1") == b"8"
    assert b"sku-2" not in table and table.get(b"sku-2", b"-") == b"-"
    assert table.data.get(b"sku-1") is None  # not in the store yet
    # When the cycle runs: one changelog record per key, the last value
    assert await table.send_writes(changelog.send) == 3
    await asyncio.sleep(0)  # the deliveries' callbacks
    assert sorted(changelog.records, key=str) == sorted(
        [(b"sku-1", b"8", 1), (b"sku-2", None, 1), (b"sku-3", b"1", 2)], key=str
    )
    assert table[b"sku-1"] == b"8"  # still read from memory until stored
    assert write_back.write_sent(app) == 3
    assert table.data.get(b"sku-1") == b"8" and table.data.get(b"sku-3") == b"1"
    assert table.pending_writes() == 0
    # And a second cycle with nothing set sends and stores nothing
    assert await table.send_writes(changelog.send) == 0 and table.write_sent() == 0
    assert len(changelog.records) == 3


async def test_two_cycles_at_once_send_a_key_s_values_in_the_order_they_were_set(
    app: faust.App,
) -> None:
    """Faust flushes the producer from more than one place (each commit, a revocation, the
    recovery at a rebalance), so a cycle can start while another is sending. The changelog's
    last record of a key is what a new owner restores: an older value sent after a newer one
    lost the newer one's update (the chaos test: an order missing from a customer's totals)."""
    table = cast(Any, app.Table("customers", key_type=bytes, value_type=bytes))
    changelog = Changelog()
    token = processing(app, 1)
    try:
        for n in range(write_back.YIELD_EVERY):  # a first slice, sent before the hot key's
            table[b"c-%d" % n] = b"1 order"
        table[b"hot"] = b"1 order"
    finally:
        _current_event.reset(token)
    first = asyncio.create_task(table.send_writes(changelog.send))
    await asyncio.sleep(0)  # the first cycle is sending its first slice
    token = processing(app, 1)
    try:
        table[b"hot"] = b"2 orders"
    finally:
        _current_event.reset(token)
    # When a second cycle runs meanwhile
    await table.send_writes(changelog.send)
    await first
    # Then the key's values reach the changelog in the order they were set
    assert [v for k, v, _ in changelog.records if k == b"hot"] == [b"1 order", b"2 orders"]
    assert table[b"hot"] == b"2 orders"


def test_the_values_of_a_lost_partition_are_dropped(app: faust.App) -> None:
    table = cast(Any, app.Table("orders", key_type=bytes, value_type=bytes))
    for partition, key in ((0, b"o-0"), (3, b"o-3")):
        token = processing(app, partition)
        try:
            table[key] = b"PAYING"
        finally:
            _current_event.reset(token)
    write_back.drop_partitions(app, {3})
    assert table.get(b"o-3") is None and table.get(b"o-0") == b"PAYING"
    assert table.pending_writes() == 1


async def test_a_rebalance_drops_the_values_not_stored_yet_of_kept_partitions_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker paused past its session timeout lost partition 1, whose new owner wrote it, and
    was given it back: its values from before the pause were flushed over the new owner's
    (test_paused_worker: holds of confirmed orders put back in the stock)."""
    app = offline_app("write-back-rebalance", write_back.Table, TableManager=TableManager)
    table = cast(Any, app.Table("stock", key_type=bytes, value_type=bytes))
    for partition, key in ((0, b"sku-0"), (1, b"sku-1")):
        token = processing(app, partition)
        try:
            table[key] = b"held"
        finally:
            _current_event.reset(token)
    rebalanced: list[bool] = []

    async def faust_on_rebalance(*args: Any, **kwargs: Any) -> None:
        rebalanced.append(True)  # Faust's: the recovery restores them from their changelogs

    monkeypatch.setattr(faust_manager.TableManager, "on_rebalance", faust_on_rebalance)
    changelog = table.changelog_topic.get_topic_name()
    kept = {TP(changelog, 0), TP(changelog, 1)}
    # When a rebalance keeps partition 0 and gives partition 1 back (revoked, then assigned)
    await cast(Any, app.tables).on_rebalance(kept, {TP(changelog, 1)}, {TP(changelog, 1)})
    # Then neither partition's values are kept in memory, and Faust's rebalance still ran
    assert table.get(b"sku-0") is None and table.get(b"sku-1") is None
    assert table.pending_writes() == 0 and rebalanced == [True]


def test_a_value_set_outside_a_record_is_refused(app: faust.App) -> None:
    table = cast(Any, app.Table("orders2", key_type=bytes, value_type=bytes))
    with pytest.raises(TypeError, match="outside of stream"):
        table[b"o-1"] = b"x"


async def test_a_partition_s_values_are_sent_in_the_order_they_were_last_set(
    app: faust.App,
) -> None:
    """A crash in the middle of a flush keeps a prefix of each partition's records. A step
    sets its history's head last (after the listed order): sent in first-set order, the head,
    set first by an earlier step, went before the listed order, and a crash could keep the
    head without it (the chaos test: a customer with 55 orders and 54 listed)."""
    table = cast(Any, app.Table("histories", key_type=bytes, value_type=bytes))
    changelog = Changelog()
    token = processing(app, 1)
    try:
        table[b"C1"] = b"head: 1 order"  # an earlier step
        table[b"C1/o-2"] = b"listed o-2"  # this step: the listed order, then the head
        table[b"C1"] = b"head: 2 orders"
    finally:
        _current_event.reset(token)
    await table.send_writes(changelog.send)
    assert [k for k, _, _ in changelog.records] == [b"C1/o-2", b"C1"]


def flush_ledger(app: faust.App, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the producer's flush does, in order: records handed to the Kafka client,
    acknowledged, and each record sent (by key)."""
    producer = cast(Any, app.producer)
    happened: list[str] = []

    async def buffer_flush() -> None:
        happened.append("write-through records handed over")

    class Client:
        async def flush(self) -> None:
            happened.append("acknowledged")

    async def send(topic: str, key: bytes, *_: Any, **__: Any) -> asyncio.Future[Any]:
        happened.append(f"sent {key.decode()}")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(partition=1, offset=0))
        return done

    monkeypatch.setattr(producer.buffer, "flush", buffer_flush)
    monkeypatch.setattr(producer, "_producer", Client())
    monkeypatch.setattr(producer, "send", send)
    return happened


async def test_at_least_once_a_flush_sends_written_back_values_after_what_was_written_through(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A written-back value (the customer history part) must not reach the changelog before
    what its step wrote through (the saga's state), or a crash in between keeps the outcome
    recorded for an order whose state never got there."""
    table = cast(Any, app.Table("stock", key_type=bytes, value_type=bytes))
    happened = flush_ledger(app, monkeypatch)
    token = processing(app, 1)
    try:
        table[b"sku-1"] = b"sold 3"
    finally:
        _current_event.reset(token)
    await app.producer.flush()
    assert happened == [
        "write-through records handed over",
        "acknowledged",
        "sent sku-1",
        "write-through records handed over",
        "acknowledged",
    ]


async def test_kept_back_records_and_a_table_that_flushes_first_go_out_in_their_order(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saga's batched stock commits are sent only once the states that decided them are
    acknowledged (a saga is never rebuilt behind a commit it sent), and the product sales are
    acknowledged before the stock is sent (never behind it after a crash in the middle)."""
    stock = cast(Any, app.Table("stock", key_type=bytes, value_type=bytes))
    sales = cast(Any, app.Table("sales", key_type=bytes, value_type=bytes))
    sales.flush_first = True
    happened = flush_ledger(app, monkeypatch)
    kept = ["commit o-1"]

    def take() -> Any:
        if not kept:
            return None
        taken = kept.pop()

        async def send_taken() -> None:
            happened.append(f"sent {taken}")

        return send_taken

    monkeypatch.setattr(producer_module, "kept_back", [take])
    token = processing(app, 1)
    try:
        stock[b"sku-1"] = b"sold 3"
        sales[b"sku-1 sales"] = b"3 units"
    finally:
        _current_event.reset(token)
    await app.producer.flush()
    assert happened == [
        "write-through records handed over",
        "acknowledged",
        "sent commit o-1",
        "sent sku-1 sales",
        "write-through records handed over",
        "acknowledged",
        "sent sku-1",
        "write-through records handed over",
        "acknowledged",
    ]

    # And a flush with nothing kept and nothing set waits once, for what was put before
    happened.clear()
    await app.producer.flush()
    assert happened == ["write-through records handed over", "acknowledged"]


def test_a_listing_sees_what_a_read_by_key_sees(app: faust.App) -> None:
    """The inventory listing iterates the table: before the values were stored (up to a commit
    interval) it missed the products restocked since (the web test's listing came back empty)."""
    table = cast(Any, app.Table("listed", key_type=bytes, value_type=bytes))
    table.data[b"stored"] = b"1"
    table.data[b"deleted"] = b"1"
    token = processing(app, 1)
    try:
        table[b"new"] = b"2"
        table[b"stored"] = b"3"
        del table[b"deleted"]
    finally:
        _current_event.reset(token)
    assert sorted(table) == [b"new", b"stored"] and len(table) == 2
    assert sorted(table.items()) == [(b"new", b"2"), (b"stored", b"3")]
    assert sorted(table.values()) == [b"2", b"3"] and sorted(table.keys()) == [b"new", b"stored"]

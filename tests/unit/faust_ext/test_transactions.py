"""Exactly-once mode (orderstream/faust_ext/transactions.py) inside a real faust.App: each record
goes into the transaction of the task it was processed for, commits go per task, and a task the
broker fenced is left to its new owner instead of crashing the worker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import faust
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalOperation, ProducerFenced
from faust.events import Event
from faust.streams import _current_event as _current_event_contextvar
from faust.transport.consumer import ConsumerMessage
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from orderstream.faust_ext import transactions as ext_transactions
from orderstream.faust_ext.transport import broker_urls


@pytest.fixture
def app() -> Iterator[faust.App]:
    app = faust.App(
        "eos-test",
        broker=broker_urls("kafka://127.0.0.1:1"),
        store="memory://",
        processing_guarantee="exactly_once",
    )
    app.in_worker = True  # Faust uses transactions in a worker only
    cast(Any, app.assignor)._topic_groups = {"orders": 0, "inventory": 0, "orders-changelog": 0}
    yield app


class Sent:
    """What reached the Kafka client (Faust's aiokafka producer's send): a ledger."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.records: list[tuple[str, int | None, str | None]] = []

        async def send(_: Any, topic: str, key: Any, value: Any, partition: Any, *a: Any,
                       transactional_id: str | None = None) -> asyncio.Future[Any]:  # fmt: skip
            self.records.append((topic, partition, transactional_id))
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        monkeypatch.setattr(faust_aiokafka.Producer, "send", send)


def processing(app: faust.App, tp: TP) -> Any:
    message = ConsumerMessage(tp.topic, tp.partition, 7, 0.0, 0, [], b"k", b"v", 1, 1, tp=tp)
    event = Event(app, b"k", b"v", {}, message)
    return _current_event_contextvar.set(_Ref(event))


class _Ref:
    def __init__(self, event: Event) -> None:
        self.event = event

    def __call__(self) -> Event:
        return self.event


async def test_an_event_goes_into_the_transaction_of_the_record_being_processed(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = Sent(monkeypatch)
    owned = {"eos-test-0-2": object(), "eos-test-0-3": object()}  # this worker's tasks
    monkeypatch.setattr(app.producer, "_transaction_producers", owned)
    transactions = cast(Any, app.consumer.transactions)
    assert isinstance(transactions, ext_transactions.TransactionManager)
    # While order-events partition 2 is processed, a command keyed to another partition
    token = processing(app, TP("orders", 2))
    try:
        await transactions.send_event("inventory", b"sku-1", b"{}", None)
    finally:
        _current_event_contextvar.reset(token)
    # With no record behind it (an HTTP request, a timer): the plain producer
    await transactions.send_event("orders", b"o-1", b"{}", None)
    # A changelog write: its partition is its task's
    await transactions.send("orders-changelog", b"o-1", b"{}", 3, None, None)
    # A record of a task this worker does not own (fenced) is void, not sent
    void = await transactions.send("orders-changelog", b"o-2", b"{}", 1, None, None)
    with pytest.raises(ProducerFenced):
        await void
    assert sent.records == [
        ("inventory", None, "eos-test-0-2"),
        ("orders", None, None),
        ("orders-changelog", 3, "eos-test-0-3"),
    ]
    assert cast(Any, app.producer).failed_sends() == 0


async def test_a_commit_goes_per_task_and_a_fenced_task_is_left_to_its_new_owner(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    transactions = cast(Any, app.consumer.transactions)
    producer = cast(Any, app.producer)
    committed: list[tuple[str, dict[TopicPartition, int]]] = []
    stopped: list[str] = []

    class Client:
        def __init__(self, tid: str) -> None:
            self.tid = tid

        async def stop(self) -> None:
            stopped.append(self.tid)

    async def commit_transactions(by_tid: Any, group: str, start_new_transaction: bool) -> None:
        for tid, offsets in by_tid.items():
            if tid == "eos-test-0-1":
                raise ProducerFenced()
            committed.append((tid, dict(offsets)))

    async def flush() -> None:
        return None

    monkeypatch.setattr(producer, "_transaction_producers", {
        "eos-test-0-0": Client("eos-test-0-0"), "eos-test-0-1": Client("eos-test-0-1"),
    })  # fmt: skip
    monkeypatch.setattr(producer, "commit_transactions", commit_transactions)
    monkeypatch.setattr(producer, "flush", flush)
    rejoins: list[bool] = []
    monkeypatch.setattr(app.consumer, "request_rejoin", lambda: rejoins.append(True))
    offsets = {TP("orders", 0): 10, TP("inventory", 0): 4, TP("orders", 1): 8}
    assert await transactions.commit(offsets)
    # Then task 0 committed both its partitions' offsets in its own transaction
    assert committed == [
        ("eos-test-0-0", {TopicPartition("orders", 0): 10, TopicPartition("inventory", 0): 4})
    ]
    # And the fenced task 1 is dropped, its producer stopped, and the group asked to rebalance
    assert "eos-test-0-1" not in producer._transaction_producers
    assert stopped == ["eos-test-0-1"] and rejoins == [True]
    # And a later commit of task 1 alone commits nothing (its offsets are the new owner's)
    assert not await transactions.commit({TP("orders", 1): 9})


async def test_a_record_refused_because_its_task_was_fenced_is_not_a_failed_delivery(
    app: faust.App,
) -> None:
    producer = cast(Any, app.producer)
    fenced: list[str] = []
    producer.on_fenced = lambda tid, error: fenced.append(tid)
    refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    producer._inflight[refused] = ("order-status", "eos-test-0-1")
    refused.set_exception(ProducerFenced())
    refused.exception()  # retrieved
    assert producer.failed_sends() == 0
    assert fenced == ["eos-test-0-1"]
    # While the same error on a record outside any transaction is a failed delivery
    plain: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    producer._inflight[plain] = ("order-status", None)
    plain.set_exception(ProducerFenced())
    plain.exception()
    assert producer.failed_sends() == 1


class _Txn:
    """aiokafka's transaction state as the sender leaves it: `fatal` once it saw ProducerFenced
    (every send then raises IllegalOperation, and commit, abort and begin are refused)."""

    def __init__(self, fatal_after: int) -> None:
        self.checks = 0
        self.fatal_after = fatal_after

    def is_fatal_error(self) -> bool:
        self.checks += 1
        return self.checks > self.fatal_after

    def is_in_transaction(self) -> bool:
        return False


class _FencedClient:
    def __init__(self, fatal_after: int) -> None:
        self._txn_manager = _Txn(fatal_after)
        self.sends = 0
        self.stopped = False

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        self.sends += 1
        raise IllegalOperation("Can't send messages while not in transaction")

    async def send_offsets_to_transaction(self, *args: Any) -> None:
        raise IllegalOperation("Not in the middle of a transaction")

    async def stop(self) -> None:
        self.stopped = True


@pytest.mark.parametrize("fatal_after", [0, 1], ids=["fenced-before", "fenced-during-send"])
async def test_a_record_of_a_task_the_broker_fenced_before_the_fence_was_handled_is_void(
    app: faust.App, monkeypatch: pytest.MonkeyPatch, fatal_after: int
) -> None:
    """The sender saw ProducerFenced and the client refuses every send, but the fence was not
    handled yet (the producer is still the task's): a write then crashed the worker with
    IllegalOperation (seen in test_paused_worker, from a commit's flush)."""
    producer = cast(Any, app.producer)
    client = _FencedClient(fatal_after)
    monkeypatch.setattr(producer, "_transaction_producers", {"eos-test-0-1": client})
    monkeypatch.setattr(producer, "_trn_locks", {"eos-test-0-1": asyncio.Lock()})
    monkeypatch.setattr(producer, "_producer", object())  # started (the plain client)
    fenced: list[str] = []
    producer.on_fenced = lambda tid, error: fenced.append(tid)
    delivery = await producer.send(
        "orders-changelog", b"k", b"v", 1, None, None, transactional_id="eos-test-0-1"
    )
    # Then the record is void: not a failed delivery, and the fence is handed on
    assert isinstance(delivery.exception(), ProducerFenced)
    await asyncio.sleep(0)
    assert producer.failed_sends() == 0
    assert fenced == ["eos-test-0-1"]
    assert client.sends == fatal_after  # tried only when the fence came during the send


async def test_a_commit_of_a_task_the_broker_fenced_before_the_fence_was_handled_is_left(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    transactions = cast(Any, app.consumer.transactions)
    producer = cast(Any, app.producer)
    client = _FencedClient(fatal_after=0)
    monkeypatch.setattr(producer, "_transaction_producers", {"eos-test-0-1": client})
    monkeypatch.setattr(producer, "_trn_locks", {"eos-test-0-1": asyncio.Lock()})

    async def flush() -> None:
        return None

    monkeypatch.setattr(producer, "flush", flush)
    rejoins: list[bool] = []
    monkeypatch.setattr(app.consumer, "request_rejoin", lambda: rejoins.append(True))
    # When the worker commits the fenced task's offsets
    assert not await transactions.commit({TP("orders", 1): 9})
    # Then nothing is committed, the task's producer is dropped and the group asked to rebalance
    assert "eos-test-0-1" not in producer._transaction_producers
    assert client.stopped and rejoins == [True]

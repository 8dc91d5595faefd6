"""Our Faust classes (orderstream/faust_ext) inside a real faust.App: selected through Faust's own
extension points, and behaving as documented with Faust's real message and consumer types."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from faust.transport import producer as faust_producer
from faust.transport.consumer import ConsumerMessage
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from orderstream import faust_ext
from orderstream.faust_ext import app as ext_app
from orderstream.faust_ext import consumer as ext_consumer
from orderstream.faust_ext import producer as ext_producer
from orderstream.faust_ext import tables as ext_tables
from orderstream.faust_ext.transport import Transport, broker_urls

T0 = TP("orders", 0)
T1 = TP("orders", 1)


@pytest.fixture
def app() -> Iterator[faust.App]:
    app = ext_app.App(
        "faust-ext-test",
        broker=broker_urls("kafka://127.0.0.1:1"),
        TableManager=ext_tables.TableManager,
        store="memory://",
    )
    app.flow_control.resume()  # as a running worker's (suspended, Faust drops what it holds)
    app.consumer_generation_id = 0  # the records' (message() below)
    yield app


def message(tp: TP, offset: int, generation: int = 0) -> ConsumerMessage:
    return ConsumerMessage(
        tp.topic, tp.partition, offset, 0.0, 0, [], b"k", b"v", 1, 1, tp=tp,
        generation_id=generation,
    )  # fmt: skip


def test_faust_selects_our_classes_through_its_extension_points(app: faust.App) -> None:
    # The entry point (pyproject.toml: faust.transports) maps orderstream:// to our transport
    assert (
        broker_urls("kafka://a:9092;kafka://b:9093") == "orderstream://a:9092;orderstream://b:9093"
    )
    assert isinstance(app.transport, Transport)
    assert isinstance(app.consumer, ext_consumer.Consumer)
    assert isinstance(app.producer, ext_producer.Producer)
    assert isinstance(app.producer.buffer, ext_producer.ProducerBuffer)
    assert isinstance(app.tables, ext_tables.TableManager)
    assert isinstance(cast(Any, app.tables).recovery, ext_tables.Recovery)


def test_the_buffer_size_is_fausts(app: faust.App) -> None:
    buffer = cast(Any, app.producer.buffer)
    faust_size = faust_producer.ProducerBuffer.size.fget  # type: ignore[attr-defined]
    assert buffer.size == faust_size(buffer) == 0
    for n in range(3):
        buffer.pending.put_nowait(n)
    assert buffer.size == faust_size(buffer) == 3
    buffer.put("record")
    assert buffer.size == faust_size(buffer) == 4 and buffer.put_count == 1
    assert buffer._threaded is False  # read once, kept


def test_the_app_makes_events_of_its_event_class(app: faust.App) -> None:
    msg = message(T0, 5)
    event = app.create_event(b"k", b"v", [], msg)
    assert type(event) is app.conf.Event
    from orderstream.worker.app import app as worker_app

    assert isinstance(worker_app, ext_app.App)
    assert (event.key, event.value, event.message) == (b"k", b"v", msg)
    assert cast(Any, app)._event_class is app.conf.Event  # read once, kept


async def test_the_consumer_reads_committed_records_only(app: faust.App) -> None:
    thread = cast(Any, app.consumer)._thread
    assert isinstance(thread, ext_consumer.ConsumerThread)
    client = thread._create_worker_consumer(app.transport)
    assert client._isolation_level == "read_committed"


async def test_the_consumer_and_producer_clients_keep_their_metadata_task_alive(
    app: faust.App,
) -> None:
    """orderstream/kafka/metadata_guard.py wraps each client's task before it starts."""
    consumer = cast(Any, app.consumer)._thread._create_worker_consumer(app.transport)
    producer = cast(Any, app.producer)._new_producer()
    for client in (consumer._client, producer.client):
        assert client._orderstream_guarded is True
        assert client._md_synchronizer.__qualname__.startswith("guard.")


def test_commits_move_over_processed_records_whatever_the_offsets_between(
    app: faust.App,
) -> None:
    consumer = cast(Any, app.consumer)
    consumer.ledger.reset(T0, 0)
    # Records of two transactions (3 and 6 are commit markers: never fetched)
    msgs = [message(T0, o) for o in (0, 1, 2, 4, 5, 7)]
    for m in msgs:
        assert consumer.ledger.admit(T0, m.offset, m)
    for m in msgs[:-1]:
        assert consumer.ack(m)
    assert consumer._new_offset(T0) == 7  # the last record is still being processed
    assert consumer.ack(msgs[-1])
    assert consumer._new_offset(T0) == 8
    assert list(consumer._filter_tps_with_pending_acks()) == [T0]


def test_a_record_its_stream_dropped_in_a_rebalance_is_not_done(app: faust.App) -> None:
    consumer = cast(Any, app.consumer)
    consumer.ledger.reset(T0, 0)
    app.consumer_generation_id = 2
    done, stale, after = (message(T0, 0, 2), message(T0, 1, 1), message(T0, 2, 2))
    for m in (done, stale, after):
        consumer.ledger.admit(T0, m.offset, m)
    assert consumer.ack(done)
    assert not consumer.ack(stale)  # Faust acks what it drops
    assert not consumer.may_apply(after)  # nothing is applied past it
    assert not consumer.ack(after)
    assert consumer._new_offset(T0) == 1  # read again from the dropped record
    assert consumer.ledger.broken()[T0][0] == 1


def _fetched(consumer: Any, batch: dict[TP, range], active: set[TP]) -> None:
    """The next fetch returns these offsets (aiokafka's records) with these active partitions."""
    records = {
        tp: [ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b"k", b"v", None, 1, 1, ())
             for o in offsets]
        for tp, offsets in batch.items()
    }  # fmt: skip

    async def next_records(timeout: float) -> tuple[dict[TP, list[Any]], set[TP]]:  # noqa: ASYNC109
        return records, active

    consumer._wait_next_records = next_records
    consumer.highwater = lambda tp: 100


async def _take(consumer: Any, stop_after: int, stop: Any) -> list[tuple[TP, int]]:
    """Run one fetch, admitting what it hands over; `stop()` after `stop_after` records."""
    got: list[tuple[TP, int]] = []
    async for tp, msg in consumer.getmany(timeout=0):
        assert consumer.ledger.admit(tp, msg.offset, msg)
        got.append((tp, msg.offset))
        if len(got) == stop_after:
            stop()
    return got


@pytest.mark.parametrize("stop", ["flow stopped", "generation changed"])
async def test_records_a_fetch_did_not_hand_over_break_their_partitions(
    app: faust.App, stop: str
) -> None:
    consumer = cast(Any, app.consumer)
    consumer.flow_active = True
    for tp in (T0, T1):
        consumer.ledger.reset(tp, 10)
    _fetched(consumer, {T0: range(10, 15), T1: range(10, 13)}, {T0, T1})

    def stopped() -> None:  # a rebalance begins while the batch is being handed over
        if stop == "flow stopped":
            consumer.flow_active = False
        else:
            app.consumer_generation_id += 1

    got = await _take(consumer, 3, stopped)
    # Faust hands partitions over in turn, and dropped the rest of the batch silently: the
    # next fetch's records (from offset 15 and 13) were admitted and committed over 11-14
    assert got == [(T0, 10), (T1, 10), (T0, 11)]
    broken = consumer.ledger.broken()
    assert {tp: at for tp, (at, _, _) in broken.items()} == {T0: 12, T1: 11}
    assert "not handed over" in broken[T0][1]
    assert not consumer.ledger.admit(T0, 15, object())  # nothing past it until the rewind


async def test_records_of_a_partition_paused_part_way_are_left_behind_not_lost(
    app: faust.App,
) -> None:
    consumer = cast(Any, app.consumer)
    consumer.flow_active = True
    for tp in (T0, T1):
        consumer.ledger.reset(tp, 0)
    consumer._active_partitions = {T0, T1}  # Faust hands over the live set (not a copy)
    _fetched(consumer, {T0: range(3), T1: range(3)}, consumer._active_partitions)
    got = await _take(consumer, 2, lambda: consumer.pause_partitions([T1]))
    assert got == [(T0, 0), (T1, 0), (T0, 1), (T0, 2)]
    assert {tp: at for tp, (at, _, _) in consumer.ledger.broken().items()} == {T1: 1}


async def test_records_fetched_before_a_seek_are_stale_not_left_behind(app: faust.App) -> None:
    consumer = cast(Any, app.consumer)
    consumer.flow_active = True
    consumer.ledger.reset(T0, 0)
    _fetched(consumer, {T0: range(5)}, {T0})

    def sought_then_stopped() -> None:  # the partition was sought since the batch was fetched
        consumer._seeks[T0] = consumer._seeks.get(T0, 0) + 1
        consumer.flow_active = False

    assert await _take(consumer, 1, sought_then_stopped) == [(T0, 0)]
    assert consumer.ledger.broken() == {}  # the seek decides where it reads next


async def test_a_partition_whose_batch_went_stale_admits_nothing_until_sought_again(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = cast(Any, app.consumer)
    sought: list[tuple[TP, int]] = []

    async def seek(partition: TP, offset: int) -> None:
        sought.append((partition, offset))

    monkeypatch.setattr(consumer, "_seek", seek)
    monkeypatch.setattr(consumer, "assignment", lambda: {T0})
    consumer.ledger.reset(T0, 542)
    before = consumer._seeks.copy()  # a batch 542-609 is fetched...
    await consumer.seek(T0, 542)  # ...and a recovery's seek lands while it is handed over
    assert not consumer._admits(T0, message(T0, 548), before)  # the rest of it is stale
    # The seek back waits for the rebalance to end; meanwhile the next batch comes from past
    # the records the stale one skipped: nothing of it is admitted (it was, and committed over)
    after = consumer._seeks.copy()
    assert not consumer._admits(T0, message(T0, 610), after)
    # Once sought back to the next record the ledger expects, the partition reads on from there
    await consumer._seek_stale()
    assert sought[-1] == (T0, 542)
    assert consumer._admits(T0, message(T0, 542), consumer._seeks.copy())


async def test_records_taken_while_the_seek_to_committed_awaits_are_fetched_again(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faust's perform_seek awaits the committed offset of each partition in turn, and the
    fetch loop runs meanwhile: it took records 522-530 from the client after the seek to 522,
    so the client's next fetch starts at 531. The ledger reset forgets 522-530 (their agents
    skip them); 531 must not be admitted over them (the chaos test: 237 orders committed over
    after a rebalance)."""
    consumer = cast(Any, app.consumer)
    sought: list[tuple[TP, int]] = []

    async def seek(partition: TP, offset: int) -> None:
        sought.append((partition, offset))

    async def faust_perform_seek(self: Any) -> None:
        self._committed_offset[T0] = 522  # aiokafka sought T0 to it; then, before returning:
        for offset in range(522, 531):
            assert self._admits(T0, message(T0, offset), self._seeks.copy())

    monkeypatch.setattr(consumer, "_seek", seek)
    monkeypatch.setattr(consumer, "assignment", lambda: {T0})
    monkeypatch.setattr(ext_consumer.faust_aiokafka.Consumer, "perform_seek", faust_perform_seek)
    await consumer.perform_seek()
    # When the next fetch, from the client's position, hands over 531
    # Then it is not admitted: the partition is sought back to where its ledger starts first
    assert not consumer._admits(T0, message(T0, 531), consumer._seeks.copy())
    await consumer._seek_stale()
    assert sought[-1] == (T0, 522)
    assert consumer._admits(T0, message(T0, 522), consumer._seeks.copy())


def test_a_fault_stops_the_partition_and_the_worker_reports_it(app: faust.App) -> None:
    consumer = cast(Any, app.consumer)
    consumer.ledger.reset(T0, 0)
    first, second = message(T0, 0), message(T0, 1)
    for m in (first, second):
        consumer.ledger.admit(T0, m.offset, m)
    consumer.fault(first, "saga: OSError('disk full')", retry_in=30)
    assert not consumer.ack(first)
    assert not consumer.may_apply(second)
    assert consumer._new_offset(T0) == 0  # never past the failed record
    assert T0 in consumer._paused_partitions
    assert consumer.faults() == {
        "partitions": {"orders/0": "at offset 0: saga: OSError('disk full')"}
    }
    assert consumer.stopped_on_purpose(T0)


def test_a_partition_paused_by_the_app_stays_out_when_its_queue_drains(app: faust.App) -> None:
    consumer = cast(Any, app.consumer)
    consumer._active_partitions = set()
    consumer._buffered_partitions = {T0}
    consumer.paused_by_app.add(T0)
    consumer.on_buffer_drop(T0)
    assert T0 not in consumer._active_partitions
    consumer.paused_by_app.clear()
    consumer.on_buffer_drop(T0)
    assert T0 in consumer._active_partitions


async def test_a_failed_delivery_is_remembered_until_cleared(app: faust.App) -> None:
    producer = cast(Any, app.producer)
    failed: list[str] = []
    producer.on_failed_send = lambda topic, error: failed.append(topic)
    ok: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    bad: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    producer._inflight[ok] = ("order-status", None)
    producer._inflight[bad] = ("order-status", None)
    ok.add_done_callback(producer._delivered)
    bad.add_done_callback(producer._delivered)
    ok.set_result(None)
    bad.set_exception(RuntimeError("MessageSizeTooLarge"))
    # Counted at once, even before the callbacks ran (the consumer asks right after a flush)
    assert producer.failed_sends() == 1
    await asyncio.sleep(0)
    assert producer.failed_sends() == 1
    assert failed == ["order-status"]
    producer.clear_failures()
    assert producer.failed_sends() == 0


def test_the_installed_faust_is_the_one_our_classes_were_written_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faust_ext.check_faust_version()  # the pinned ones: no error
    installed = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}
    monkeypatch.setattr(faust_ext, "version", installed.__getitem__)
    faust_ext.check_faust_version()
    installed["faust-streaming"] = "0.16.0"
    with pytest.raises(faust_ext.FaustVersionError, match=r"0\.16\.0 is installed.*0\.15\.3"):
        faust_ext.check_faust_version()
    installed.update({"faust-streaming": "0.15.3", "aiokafka": "0.14.1"})
    with pytest.raises(faust_ext.FaustVersionError, match=r"aiokafka 0\.14\.1 is installed"):
        faust_ext.check_faust_version()


async def test_a_worker_paused_past_its_session_share_applies_and_sends_nothing(
    app: faust.App,
) -> None:
    consumer = cast(Any, app.consumer)
    producer = cast(Any, app.producer)
    consumer.ledger.reset(T0, 0)
    record = message(T0, 0)
    consumer.ledger.admit(T0, 0, record)
    consumer._clock_running = True
    assert consumer.may_apply(record)
    # When the process was stopped longer than half the session timeout (its clock stood still)
    consumer._last_tick -= app.conf.broker_session_timeout
    # Then it applies nothing (the record is read again later) and sends nothing
    assert not consumer.may_apply(record)
    assert consumer.ledger.broken()[T0][0] == 0
    refused = await producer.send("order-status", b"o-1", b"{}", None, None, None)
    with pytest.raises(ext_producer.WorkerFenced):
        await refused
    assert producer.failed_sends() == 1
    assert "fenced" in consumer.faults()
    # And a rebalance that gives it partitions again lifts the fence
    consumer._unfence("test")
    assert not consumer.fenced()


async def test_a_commit_starts_the_count_toward_the_next_commit_by_number_again(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fetch loop commits every `commit_every` acknowledged records; Faust counted those
    from the last such commit only, so at low load the periodic commit did not spare the fetch
    loop its own (a commit more every ~2 s, when the fetch loop still waited for it)."""

    async def committed(self: Any, offsets: Any) -> bool:
        return True

    monkeypatch.setattr(faust_aiokafka.Consumer, "_commit", committed)
    consumer = cast(Any, app.consumer)
    consumer._n_acked = 999
    assert await consumer._commit({T0: 5})
    assert consumer._n_acked == 0


async def test_a_commit_by_number_does_not_hold_the_fetch_loop(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faust's fetch loop awaits the commit it makes every `commit_every` acknowledged records:
    every delivery waited for the flush and the commit (at 330 orders/s, p50 latency 72 ms
    instead of 33). Ours starts it beside the loop, one at a time, and goes on delivering."""
    consumer = cast(Any, app.consumer)
    fetcher = type("Fetcher", (), {"_stopped": asyncio.Event()})()
    batches = [[(T0, message(T0, n)) for n in range(6)]]
    commit_done = asyncio.Event()  # a slow commit: it ends when the test says so
    commits: list[int] = []
    delivered: list[int] = []

    async def getmany(timeout: float) -> Any:  # noqa: ASYNC109 (Faust's signature)
        if not batches:
            fetcher._stopped.set()
        for tp, msg in batches.pop(0) if batches else []:
            yield tp, msg

    async def deliver(msg: Any) -> bool:
        delivered.append(msg.offset)
        consumer._n_acked += 1  # acknowledged at once
        return True

    async def commit(*args: Any, **kwargs: Any) -> bool:
        commits.append(len(delivered))
        await commit_done.wait()
        return True

    monkeypatch.setattr(consumer, "getmany", getmany)
    monkeypatch.setattr(consumer, "_admits", lambda *a: True)
    monkeypatch.setattr(consumer, "_deliver", deliver)
    monkeypatch.setattr(consumer, "commit", commit)
    consumer._commit_every = 2
    async with asyncio.timeout(5):
        await consumer._drain_messages(fetcher)
    assert delivered == [0, 1, 2, 3, 4, 5]  # none waited for the commit
    await asyncio.sleep(0)
    assert len(commits) == 1  # due after 2 and 4: started once, not again while it runs
    commit_done.set()
    await asyncio.sleep(0)
    assert consumer._count_commit.done()

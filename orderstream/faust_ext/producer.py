"""The worker's Kafka producer: Faust's aiokafka producer that knows which of its records
failed to reach the broker, and a buffer whose flush waits for every record put before it.

* Every record goes through `Producer.send` (the agents' events straight, the tables'
  changelog writes through the buffer): a delivery that fails after the client's retries is
  logged, counted and remembered: the consumer commits nothing over it and the worker stops
  (orderstream/faust_ext/consumer.py); restarted, it processes the partitions again from their
  committed offsets, and the records processed again re-send their events and re-write their state
  (every agent does so for a redelivered record), so the changelog catches up with the local store.
* Faust's `ProducerBuffer.flush` (before each commit) gives up when no record left the buffer
  for 0.1 s and ignores the record being sent, so a commit could cover table writes not yet
  sent. `ProducerBuffer.flush` here returns only once every record put before it was handed to
  the Kafka client, whose own flush then waits for the broker.
* aiokafka makes each record's future after looking the running loop up (`asyncio.get_event_loop`
  and a check that it runs; asyncio checks the process id with a system call): ~0.3 us per
  record sent. `LoopFutures` has each batch make them with the accumulator's loop's
  `create_future`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiokafka.errors import IllegalOperation, ProducerFenced
from aiokafka.producer.message_accumulator import MessageAccumulator, MessageBatch
from faust.transport import producer as faust_producer
from faust.transport.drivers import aiokafka as faust_aiokafka

from orderstream.faust_ext import write_back, write_through
from orderstream.faust_ext.transactions import is_fenced
from orderstream.kafka import metadata_guard

log = logging.getLogger(__name__)


#: Records kept back for the flush before each offset commit
#: (orderstream/worker/commit_batches.py): each hook is called at the start of every flush of the
#: worker's producer and takes what was kept back so far, returning what sends it (None: nothing
#: kept). At least once, that is sent once every record put before the flush is acknowledged:
#: the saga states that decided a batch's commits are in the changelog before the batch is.
KeptBack = Callable[[], Callable[[], Awaitable[None]] | None]
kept_back: list[KeptBack] = []


class WorkerFenced(Exception):
    """A record not sent because the worker was paused long enough to lose its partitions."""


class TaskNotOwned(ProducerFenced):  # type: ignore[misc]
    """Exactly-once mode: a record of a task whose transaction was fenced: not sent."""


class ProducerBuffer(faust_producer.ProducerBuffer):
    """Faust's buffer of table changelog writes, with a flush that waits (module doc)."""

    _threaded: bool | None = None  # the app's `producer_threaded`, once read (`threaded`)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.put_count = 0
        self.sent_count = 0

    def put(self, fut: Any) -> None:
        """Faust's, with its setting read once (`threaded`)."""
        self.put_count += 1
        if self.threaded():
            super().put(fut)
        else:
            self.pending.put_nowait(fut)

    @property
    def size(self) -> int:
        """Faust's, with its setting read once (`threaded`): the size is asked twice for every
        record handed to a stream."""
        if self.threaded():
            return cast(int, cast(Any, faust_producer.ProducerBuffer.size).fget(self))
        return len(self.pending._queue)  # type: ignore[attr-defined]

    def threaded(self) -> bool:
        """The app's `producer_threaded`, read once: a look-up in Faust's settings costs ~1 us,
        and Faust's `put` and `size` made one for every table write and twice for every record
        consumed (~2% of a worker's CPU)."""
        threaded = self._threaded
        if threaded is None:
            threaded = self._threaded = bool(cast(Any, self.app).conf.producer_threaded)
        return threaded

    async def _send_pending(self, fut: Any) -> None:
        try:
            if type(fut) is write_through.ChangelogRecord:
                await fut.table.send_record(fut, self.app.producer)  # type: ignore[union-attr]
            else:
                await super()._send_pending(fut)
        finally:
            self.sent_count += 1

    async def flush(self) -> None:
        """Return once every record put before the call is with the Kafka client."""
        target = self.put_count
        while self.sent_count < target:
            if self.state != "running":
                if self.size:
                    raise RuntimeError("Cannot flush: Producer not Running")
                return
            self.message_sent.clear()
            with contextlib.suppress(TimeoutError):  # look again: the producer may have stopped
                await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)


class LoopBatch(MessageBatch):  # type: ignore[misc]
    """aiokafka's batch of one partition's records, whose futures its loop makes."""

    new_future: Callable[[], asyncio.Future[Any]]

    def append(
        self,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
        _create_future: Any = None,
        headers: Any = (),
    ) -> asyncio.Future[Any] | None:
        return MessageBatch.append(  # type: ignore[no-any-return]
            self, key, value, timestamp_ms, self.new_future, headers
        )


class LoopFutures(MessageAccumulator):  # type: ignore[misc]
    """aiokafka's accumulator, whose batches are `LoopBatch`es (module doc)."""

    def _append_batch(self, builder: Any, tp: Any) -> MessageBatch:
        # aiokafka's, with a LoopBatch
        if self._txn_manager is not None:
            self._txn_manager.maybe_add_partition_to_txn(tp)

        batch = LoopBatch(tp, builder, self._batch_ttl, self._linger_time)
        batch.new_future = self._loop.create_future
        self._batches[tp].append(batch)
        if not self._waiter_future.done():
            self._waiter_future.set_result(None)
        return batch


class Producer(faust_aiokafka.Producer):
    """Faust's aiokafka producer, with failed deliveries remembered (module doc)."""

    #: Called with (topic, error) for each record that could not be delivered.
    on_failed_send: Callable[[str, BaseException], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buffer = ProducerBuffer(loop=self.loop, beacon=self.beacon)
        buffer.app = self.app
        threaded = getattr(self.buffer, "threaded_producer", None)
        if threaded is not None:
            buffer.threaded_producer = threaded
        self.buffer = buffer
        self._failures = 0
        # future -> (topic, transactional id) of each record not yet acknowledged
        self._inflight: dict[asyncio.Future[Any], tuple[str, str | None]] = {}
        self.last_error: BaseException | None = None
        #: Exactly-once mode: called with (transactional id, error) when the broker refused a
        #: record because another producer owns its task now
        #: (orderstream/faust_ext/transactions.py).
        self.on_fenced: Callable[[str, BaseException], None] | None = None
        self._write_back_cycle = asyncio.Lock()  # one write-back cycle at a time (`flush`)

    def _new_producer(self, transactional_id: str | None = None) -> Any:
        """Faust's aiokafka producer, its metadata task kept alive (kafka/metadata_guard.py),
        its records' futures made by the loop (`LoopFutures`: the accumulator aiokafka made,
        which its sender holds too, becomes one; it adds no state)."""
        producer = super()._new_producer(transactional_id)
        metadata_guard.guard(producer.client, "producer")
        producer._message_accumulator.__class__ = LoopFutures
        return producer

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        consumer: Any = self.app.consumer
        fence = getattr(consumer, "fenced", None)
        if fence is not None and not self.app.in_transaction and fence():
            # Paused past the session timeout: another worker may own this partition now.
            # (Exactly-once mode: the broker fences the task's transaction instead.)
            refused: asyncio.Future[Any] = self.loop.create_future()
            refused.set_exception(WorkerFenced(f"not sent to {topic}: the worker is fenced"))
            self._inflight[refused] = (topic, None)
            refused.add_done_callback(self._delivered)
            return refused
        if transactional_id is not None and self._task_lost(transactional_id):
            return self._void(topic, transactional_id)
        try:
            delivery = await super().send(
                topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
            )
        except IllegalOperation:
            # Fenced between the check and the send (under the task's lock, in the client).
            if transactional_id is None or not self._task_lost(transactional_id):
                raise
            return self._void(topic, transactional_id)
        future: asyncio.Future[Any] = delivery  # type: ignore[assignment]
        self._inflight[future] = (topic, transactional_id)
        future.add_done_callback(self._delivered)
        return delivery

    def _task_lost(self, tid: str) -> bool:
        """Exactly-once mode: whether the task's transaction is gone: dropped after a fence, or
        fenced by the broker (aiokafka's sender saw ProducerFenced and put the transaction in
        its fatal state, refusing every send) before the fence was handled (`on_fenced`)."""
        client = self._transaction_producers.get(tid)
        if client is None:
            return True
        txn = getattr(client, "_txn_manager", None)
        return txn is not None and txn.is_fatal_error()

    def _void(self, topic: str, tid: str) -> asyncio.Future[Any]:
        """A record of a task another worker owns now: not sent, and not a failed delivery
        (`_delivered` hands the fence to `on_fenced`, which drops the task's producer)."""
        void: asyncio.Future[Any] = self.loop.create_future()
        void.set_exception(TaskNotOwned(f"{tid}: not sent to {topic}"))
        self._inflight[void] = (topic, tid)
        void.add_done_callback(self._delivered)
        return void

    async def flush(self) -> None:
        """Faust's flush, after the records kept back for it (`kept_back`) and the values the
        write-back tables set since the last flush (orderstream/faust_ext/write_back.py) were
        sent; over a copy of the transactional producers (a fenced one is dropped while the
        others flush) and past a fenced one's error.

        At least once, the kept-back records and the write-back values are taken first, then
        every record put before (the events and the write-through tables' records of the same
        steps) is acknowledged, and only then are they sent: the tables that flush first
        (`write_back.Table.flush_first`), acknowledged, then the others. A crash in the middle
        of the flush then never keeps a stock commit without the saga state that decided it (a
        saga is never rebuilt behind a commit it sent, and never asks again for a hold that was
        sold), nor a stock that sold a hold without the sale recorded (the product sales flush
        first: orderstream/worker/agents/inventory.py). One such cycle at a time, so that a
        key's values reach the changelog in the order they were set
        (write_back.Table.send_writes). In exactly-once mode the transaction makes them all
        visible at once, or none."""
        tables = [t for t in list(self.app.tables.values()) if isinstance(t, write_back.Table)]
        if self.app.in_transaction:
            for take in kept_back:
                send_kept = take()
                if send_kept is not None:
                    await send_kept()
            for table in tables:
                await table.send_writes(self.app.consumer.transactions.send)
        else:
            async with self._write_back_cycle:
                senders = [s for s in (take() for take in kept_back) if s is not None]
                taken = [(t, values) for t in tables if (values := t.take_writes())]
                if senders or taken:
                    await self._flush_sent()
                for send_kept in senders:
                    await send_kept()
                first = [(t, values) for t, values in taken if t.flush_first]
                rest = [(t, values) for t, values in taken if not t.flush_first]
                for table, values in first:
                    await table.send_taken(values, self.send)
                if first and rest:
                    await self._flush_sent()
                for table, values in rest:
                    await table.send_taken(values, self.send)
        await self._flush_sent()
        for client in list(self._transaction_producers.values()):
            try:
                await client.flush()
            except Exception as exc:
                if not is_fenced(exc):
                    raise

    async def _flush_sent(self) -> None:
        """Until every record put before is acknowledged (or failed: the consumer sees it)."""
        await self.buffer.flush()
        if self._producer is not None:
            await self._producer.flush()

    def _delivered(self, future: asyncio.Future[Any]) -> None:
        record = self._inflight.pop(future, None)
        if record is None:
            return  # counted already
        error = future.exception() if not future.cancelled() else asyncio.CancelledError()
        if error is None:
            return
        topic, tid = record
        if tid is not None and is_fenced(error):
            if self.on_fenced is not None:
                self.on_fenced(tid, error)
            return  # the task's new owner sends it: not a failed delivery
        self._failed(topic, error)

    def _failed(self, topic: str, error: BaseException) -> None:
        self._failures += 1
        self.last_error = error
        if self.on_failed_send is not None:
            self.on_failed_send(topic, error)

    def failed_sends(self) -> int:
        """Records that failed since the last `clear_failures`, whose callbacks ran or not."""
        for future in [f for f in self._inflight if f.done()]:
            self._delivered(future)  # done, its callback not run yet: count it now
        return self._failures

    def clear_failures(self) -> None:
        self._failures = 0
        self.last_error = None

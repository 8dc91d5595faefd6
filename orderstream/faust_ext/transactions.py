"""Exactly-once mode (ORDERSTREAM_PROCESSING_GUARANTEE=exactly_once): Kafka transactions, one
per task, as Kafka Streams' exactly-once mode does.

A task is one partition number of the worker's co-partitioned topics (an order's saga state,
its table's changelog partition and the offsets of its input partitions all share it). Every
record a task sends while it processes its input (events, dead letters, repartitioned records
and its tables' changelog writes) goes into that task's transaction, and the transaction
commits the task's input offsets with them: the records become visible to read_committed
consumers, and the offsets move, together or not at all.

The transactional id is stable per task (`{app id}-{topic group}-{partition}`), so the broker
fences a worker that lost a task without noticing (paused past its session timeout, a network
partition): the new owner's producer for that id bumps the epoch and aborts the old owner's
open transaction; the old owner's later sends and commit are refused (ProducerFenced). The
worker then drops that producer, counts the fence, and leaves the task to the group (it asks to
rejoin), so nothing it wrote after losing the task is ever visible. Records sent with no input
behind them (POST /orders, saga deadline events) go through the plain producer: they are
inputs, validated against the state by the agent that consumes them.

What it changes in faust-streaming's transaction manager, and why:

* Faust picks the transaction of a record by the partition it is sent *to*. A saga step sends
  commands keyed by product to other partitions, so its records would land in another task's
  transaction and commit with another task's offsets. Here an event goes into the transaction
  of the record being processed (`send_event`); only changelog writes (whose partition is
  their source's) are routed by their partition.
* Faust commits a transaction without flushing the producer buffer that holds the tables'
  changelog writes, so a commit could pass offsets whose state is not in it. Here the buffer is
  flushed first, and nothing commits while a record sent since the last rewind failed.
* A fenced producer crashed the worker (`app.crash`); here the task is left to its new owner.
* After a rebalance every kept partition is processed again from its committed offset (Faust
  seeks there), so an open transaction of a kept task is aborted, not carried on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, cast

from aiokafka import TopicPartition
from aiokafka.errors import IllegalOperation, InvalidProducerEpoch, ProducerFenced
from faust.streams import current_event
from faust.transport import consumer as faust_consumer
from faust.types import TP

from orderstream.faust_ext import write_back
from orderstream.observability import metrics

log = logging.getLogger(__name__)

#: Errors that say another producer owns this transactional id now.
FENCED: tuple[type[BaseException], ...] = (ProducerFenced, InvalidProducerEpoch)


def is_fenced(error: BaseException | None) -> bool:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, FENCED):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


class TransactionManager(faust_consumer.TransactionManager):
    """Faust's transaction manager, with transactions per task of the input (module doc)."""

    def transactional_id(self, tp: TP) -> str:
        group = self.app.assignor.group_for_topic(tp.topic)
        return f"{self.app.conf.id}-{group}-{tp.partition}"

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
        """Faust's path: the tables' changelog writes (a changelog partition is its task's)."""
        p = partition if partition is not None else self.consumer.key_partition(topic, key)
        if transactional_id is None and p is not None:
            transactional_id = self.transactional_id(TP(topic, p))
        return await self.producer.send(
            topic, key, value, p, timestamp, headers, transactional_id=transactional_id
        )

    async def send_event(
        self, topic: str, key: bytes, value: bytes, headers: Any
    ) -> asyncio.Future[Any]:
        """An event: in the transaction of the record being processed; with none (an HTTP
        request, a timer), through the plain producer."""
        event = current_event()
        tid = self.transactional_id(event.message.tp) if event is not None else None
        delivery = await self.producer.send(
            topic, key, value, None, None, headers, transactional_id=tid
        )
        return cast("asyncio.Future[Any]", delivery)

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        producer = cast(Any, self.producer)
        await producer.flush()  # the tables' changelog writes reach their transactions first
        await asyncio.sleep(0)  # delivery callbacks of the flush's last batches run first
        if producer.failed_sends():
            return False  # the consumer's repair stops the worker loudly (consumer.py)
        by_task: dict[str, dict[TopicPartition, int]] = defaultdict(dict)
        for tp, offset in offsets.items():
            # aiokafka refuses Faust's TP (another named tuple) here
            by_task[self.transactional_id(tp)][TopicPartition(tp.topic, tp.partition)] = offset
        committed, lost = False, set()
        for tid, task_offsets in sorted(by_task.items()):
            if producer._task_lost(tid):
                lost |= {tp.partition for tp in task_offsets}
                await self.fenced(tid, ProducerFenced())  # if not dropped yet
                continue  # fenced: its offsets are the new owner's to commit
            try:
                await producer.commit_transactions(
                    {tid: task_offsets},
                    self.app.conf.id,
                    start_new_transaction=start_new_transaction,
                )
                committed = True
            except (*FENCED, IllegalOperation) as exc:
                if not (is_fenced(exc) or producer._task_lost(tid)):
                    raise
                lost |= {tp.partition for tp in task_offsets}
                await self.fenced(tid, exc)
        write_back.drop_partitions(self.app, lost)  # their values are the new owner's
        write_back.write_sent(self.app)  # committed: into the stores
        return committed

    async def fenced(self, tid: str, error: BaseException, *, rejoin: bool = True) -> None:
        """Another worker owns this task now: drop its producer and leave it to the group
        (`rejoin=False`: the rebalance under way gave the task back; a new producer takes it)."""
        producer = cast(Any, self.producer)
        stale = producer._transaction_producers.pop(tid, None)
        if stale is None:
            return  # dropped already
        metrics.task_fenced()
        log.warning(
            "task %s: fenced by the broker (%r): another worker owns it now; nothing this worker "
            "sent for it since its last commit is visible, and it asks the group to rebalance",
            tid,
            error,
        )
        if rejoin:
            cast(Any, self.consumer).request_rejoin()
        try:
            await stale.stop()
        except Exception as exc:  # a fenced producer may fail to stop cleanly: it is gone
            log.info("task %s: stopping its fenced producer: %r", tid, exc)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        await cast(Any, self.producer).flush()

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP]
    ) -> None:
        keep = self._tps_to_transactional_ids(assigned)
        gone = sorted(self._tps_to_transactional_ids(revoked) - keep)
        producer = cast(Any, self.producer)
        for tid in gone:
            log.info(
                "task %s: revoked; its producer stops, and the next owner's producer for the "
                "task fences it and aborts its open transaction",
                tid,
            )
            await producer.stop_transaction(tid)
        await self._begin(sorted(keep))

    async def _begin(self, tids: Iterable[str]) -> None:
        producer = cast(Any, self.producer)
        for tid in tids:
            client = producer._transaction_producers.get(tid)
            if client is not None and producer._task_lost(tid):
                # Fenced while this worker was away, and assigned to it again: a new producer
                # (its transaction can neither commit nor abort, nor begin again).
                await self.fenced(tid, ProducerFenced(), rejoin=False)
                client = None
            if client is None:
                await producer.maybe_begin_transaction(tid)  # a new producer: fences the old
                continue
            txn = client._txn_manager
            try:
                if txn.is_in_transaction():
                    # Processed again from its committed offsets: what it sent is not kept.
                    async with producer._trn_locks[tid]:
                        await client.abort_transaction()
                        await client.begin_transaction()
                else:
                    await producer.maybe_begin_transaction(tid)
            except FENCED as exc:
                await self.fenced(tid, exc)

"""The worker's Kafka consumer: Faust's aiokafka consumer with commits decided by a record
ledger (app/faust_ext/ledger.py) instead of offset arithmetic, read_committed isolation, and
partitions that break at a record not processed and are rewound to it.

What it changes in faust-streaming 0.15.3, and why (docs/faust-fixes.md has the details):

* Faust takes any jump between two fetched offsets for a gap that does not exist and acks it
  (`_add_gap`); and records it fetched but never delivered (a delivery abandoned when a
  rebalance suspends the flow) or that its streams dropped (stale generation) count as done.
  A commit then passes records never processed. Here a commit moves only over records that
  were delivered and processed (`ack`, `_new_offset`), whatever the offsets in between are.
* It reads uncommitted transactions: an aborted transaction's records would be processed.
  Here the consumer reads with isolation.level=read_committed.
* Every record is delivered directly when its delivery cannot block, instead of inside two
  tasks and an `asyncio.wait` each (`_drain_messages`).
* Partitions the app took out of the fetch on purpose (`paused_by_app`) stay out when Faust's
  queue flow control would put them back (`on_buffer_drop`).
* No commit while a record the worker sent (an event or a table's changelog write) failed to
  reach the broker since the partitions were last rewound (`_commit`, app/faust_ext/producer.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from time import monotonic
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode import Service
from mode.utils.futures import notify

from app import metrics
from app.faust_ext.ledger import Ledger

log = logging.getLogger(__name__)

REPAIR_EVERY_S = 0.25
SEND_RETRY_MAX_S = 30.0  # the longest wait between two rewinds after failed sends


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, reading committed records only."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # aiokafka reads it when it starts
        return consumer


class Consumer(faust_aiokafka.Consumer):
    """See the module doc. `fault` breaks a partition at a record its agent could not process;
    the repair task rewinds broken partitions (at once, or after the fault's back-off)."""

    ledger: Ledger[TP]
    #: Partitions the app took out of the fetch (the order intake at its bound of open orders).
    paused_by_app: set[TP]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ledger: Ledger[TP] = Ledger()
        self.paused_by_app = set()
        self._waiting: dict[TP, bool] = {}  # partitions stopped until a rewind -> a fault?
        self.delivery_failing = False  # until a commit succeeds after a failed send
        self._send_retry_at = 0.0
        self._send_backoff = 1.0
        super().__init__(*args, **kwargs)

    def faults(self) -> dict[str, object]:
        """What keeps this worker from committing or processing (empty: nothing)."""
        found: dict[str, object] = {}
        if self.delivery_failing:
            error = cast(Any, self.app.producer).last_error
            found["delivery"] = f"records not delivered to the broker: {error!r}"
        broken = self.ledger.broken()
        stopped = {
            f"{tp.topic}/{tp.partition}": f"at offset {offset}: {why}"
            for tp, (offset, why, _) in broken.items()
            if self._waiting.get(tp)
        }
        if stopped:
            found["partitions"] = stopped
        return found

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # -- which records may be delivered, applied and committed ------------------------------

    def may_apply(self, message: Any) -> bool:
        """Whether an agent may apply this record: it is the current fetch of its offset and no
        record before it in its partition was left unprocessed."""
        return self.ledger.is_current(message.tp, message.offset, message)

    def ack(self, message: Any) -> bool:
        """Faust's final ack of a record (every stream that got it is done with it)."""
        with ack_lock:
            if message.acked:
                return False
            message.acked = True
            self._unacked_messages.discard(message)
            app = self.app
            tp, offset = message.tp, message.offset
            if message.generation_id != app.consumer_generation_id or (
                not app.flow_control.is_active()
            ):
                # Faust drops such records unprocessed (another generation, or the queues
                # being cleared for a rebalance): not done, read again.
                self._break(tp, offset, "dropped by its stream in a rebalance")
                done = False
            else:
                done = self.ledger.done(tp, offset, message)
                if done:
                    self._n_acked += 1
            notify(self._waiting_for_ack)
            return done

    def fault(self, message: Any, reason: str, retry_in: float) -> None:
        """An agent could not process `message`: nothing of its partition from it on is applied
        or committed, and the partition is rewound to it after `retry_in` seconds (until then
        the worker reports the fault: not ready)."""
        self._stop_at(message, reason, retry_in, fault=True)

    def retry_later(self, message: Any, reason: str, retry_in: float) -> None:
        """`message` cannot be applied yet (it answers state not rebuilt yet): its partition
        waits and is rewound to it after `retry_in` seconds. Not a fault."""
        self._stop_at(message, reason, retry_in, fault=False)

    def _stop_at(self, message: Any, reason: str, retry_in: float, *, fault: bool) -> None:
        tp = message.tp
        if self._break(tp, message.offset, reason, retry_at=monotonic() + retry_in):
            self.pause_partitions([tp])
            self._waiting[tp] = fault

    def _break(self, tp: TP, offset: int, reason: str, *, retry_at: float = 0.0) -> bool:
        broke = self.ledger.break_at(tp, offset, reason, retry_at=retry_at)
        if broke and not retry_at:
            metrics.records_reread()
        return broke

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        return (
            tp
            for tp in self.ledger.partitions()
            if topics is None or tp in topics or tp.topic in topics
        )

    def _new_offset(self, tp: TP) -> int | None:
        return self.ledger.commit_offset(tp)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        """Commit, unless a record sent since the last rewind failed: the records that made
        it would be committed over (Faust flushed the producer just before)."""
        producer = cast(Any, self.app.producer)
        await asyncio.sleep(0)  # delivery callbacks of the flush's last batches run first
        if producer.failed_sends():
            return False
        committed = bool(await super()._commit(offsets))
        if committed and self.delivery_failing and not producer.failed_sends():
            self.delivery_failing = False
            self._send_backoff = 1.0
            metrics.delivery_failing(False)
            log.warning("records reach the broker again: commits resumed")
        return committed

    # -- seeks ------------------------------------------------------------------------------

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset (Faust does it after a rebalance)."""
        await super().perform_seek()
        for tp in self.assignment():
            self.ledger.reset(tp, self._committed_offset.get(tp))
            if self._waiting.pop(tp, None) is not None:
                self.resume_partitions([tp])

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self.ledger.drop(tp)
            self._waiting.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def rewind_broken(self) -> int:
        """Seek each broken partition whose back-off is over back to its first record not
        processed. Not during a rebalance: the seek after it rewinds every partition."""
        app = self.app
        if app.rebalancing or not self.flow_active or not app.flow_control.is_active():
            return 0
        now, assigned, rewound = monotonic(), self.assignment(), 0
        for tp, (offset, reason, retry_at) in self.ledger.broken().items():
            if tp not in assigned:
                self.ledger.drop(tp)
                continue
            if retry_at > now:
                continue
            part = tp
            await self.seek(part, offset)
            self.ledger.rewind(part, offset)
            faulted = self._waiting.pop(part, None)
            if faulted is not None:
                self.resume_partitions([part])
            cause = {True: "fault", False: "waited", None: "unprocessed"}[faulted]
            metrics.partition_rewound(cause)
            log.warning("%s/%d rewound to %d (%s)", part.topic, part.partition, offset, reason)
            rewound += 1
        return rewound

    async def _resend_lost_changelog(self, producer: Any) -> bool:
        """Send each table key whose changelog write failed again, with the table's current
        value (a changelog keeps the last value per key): the state a restore rebuilds is then
        the state the records processed so far made. True once all are acknowledged."""
        lost, producer.lost_changelog = producer.lost_changelog, []
        tables = cast(Any, self.app.tables)._changelogs  # changelog topic -> table
        sends = []
        for topic, key, partition in dict.fromkeys(lost):
            table = tables.get(topic)
            if table is None or key is None:
                continue
            value = table.data.get(key)
            sends.append((topic, key, partition, value))
        try:
            for topic, key, partition, value in sends:
                delivery = await producer.send(topic, key, value, partition, None, None)
                await delivery
        except Exception as exc:
            log.error("changelog records could not be sent again (%r): retrying later", exc)
            producer.lost_changelog[:0] = lost
            return False
        if sends:
            log.warning("%d changelog records sent again after a failed send", len(sends))
        return True

    @Service.task
    async def _repair_partitions(self) -> None:
        """Rewind broken partitions, and every partition after a failed send."""
        while not self.should_stop:
            await self.sleep(REPAIR_EVERY_S)
            try:
                await self._repair()
            except Exception:  # the repair must outlive any one failure of its own
                log.exception("partition repair failed; next try in %ss", REPAIR_EVERY_S)

    async def _repair(self) -> None:
        producer = cast(Any, self.app.producer)
        failed = producer.failed_sends()
        if failed:
            if not self.delivery_failing:
                self.delivery_failing = True
                metrics.delivery_failing(True)
            now = monotonic()
            if now < self._send_retry_at or self.app.rebalancing:
                return
            log.error(
                "%d records this worker sent did not reach the broker (last error: %r): "
                "nothing is committed over them; every partition is processed again from its "
                "committed offset (next rewind in %.0f s at the earliest if sends still fail)",
                failed,
                producer.last_error,
                self._send_backoff,
            )
            if not await self._resend_lost_changelog(producer):
                self._send_retry_at = now + self._send_backoff
                self._send_backoff = min(self._send_backoff * 2, SEND_RETRY_MAX_S)
                return
            producer.clear_failures()
            await self.rewind_all()
            metrics.partition_rewound("send_failed")
            self._send_retry_at = now + self._send_backoff
            self._send_backoff = min(self._send_backoff * 2, SEND_RETRY_MAX_S)
            return
        await self.rewind_broken()
        metrics.partitions_faulted(sum(self._waiting.values()))

    async def rewind_all(self) -> None:
        """Seek every partition back to its committed offset (after a failed send)."""
        self.stop_flow()  # the fetch loop leaves its batch; nothing is handed on meanwhile
        await self.wait_for_stopped_flow()
        try:
            await self.perform_seek()
        finally:
            self.resume_flow()

    # -- Faust's flow control ---------------------------------------------------------------

    def stopped_on_purpose(self, tp: TP) -> bool:
        """Out of the fetch on purpose: the app's bound, or waiting to be rewound."""
        return tp in self.paused_by_app or tp in self._waiting

    def on_buffer_drop(self, tp: TP) -> None:
        if tp not in self.paused_by_app:  # the app puts it back itself
            super().on_buffer_drop(tp)

    def _delivers_at_once(self, tp: TP) -> bool:
        """Whether handing a record of `tp` to its streams cannot block (Faust's on_message
        waits only on flow control, a full producer buffer, the callback map's lock or a full
        stream queue; the check and the delivery run with no await in between)."""
        app = self.app
        conductor = cast(Any, app.topics)
        buffer = app.producer.buffer
        if (
            self.suspend_flow.is_set()
            or not app.flow_control.is_active()
            or buffer.size > buffer.max_messages
            or conductor._tp_to_callback_lock.locked()
        ):
            return False
        channels = conductor._tp_index.get(tp)
        return bool(channels) and not any(chan.queue.full() for chan in channels)

    async def _deliver(self, message: Any) -> bool:
        """Hand one record to its streams; False when the delivery was abandoned (a rebalance
        suspended the flow while it waited)."""
        if self._delivers_at_once(message.tp):
            await self.callback(message)
            return True
        delivery = asyncio.ensure_future(self.callback(message))
        suspended = asyncio.ensure_future(self.suspend_flow.wait())
        try:
            await asyncio.wait((delivery, suspended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            suspended.cancel()
        if delivery.done():
            delivery.result()
            return True
        delivery.cancel()
        return False

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by workers
        """Faust 0.15.3's fetch loop, with records admitted by the ledger (no gap filling, no
        read-offset check) and delivered directly when that cannot block."""
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
        commit_every = self._commit_every
        admit = self.ledger.admit
        num_since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)  # getmany may return at once, in a loop: let others run
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > 100:
                            await asyncio.sleep(0)
                            num_since_yield = 0
                        if not admit(tp, message.offset, message):
                            continue  # stale, or past a record not processed yet
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if not await self._deliver(message):
                            self._break(tp, message.offset, "delivery abandoned in a rebalance")
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

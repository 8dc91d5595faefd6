"""The worker's Kafka consumer: Faust's aiokafka consumer with commits decided by a record
ledger (orderstream/faust_ext/ledger.py) instead of offset arithmetic, read_committed isolation, and
partitions that break at a record not processed and are rewound to it.

What it changes in faust-streaming 0.15.3, and why (docs/faust-fixes.md has the details):

* Faust takes any jump between two fetched offsets for a gap that does not exist and acks it
  (`_add_gap`); and records it fetched but never delivered (a delivery abandoned when a
  rebalance suspends the flow) or that its streams dropped (stale generation) count as done.
  A commit then passes records never processed. Here a commit moves only over records that
  were delivered and processed (`ack`, `_new_offset`), whatever the offsets in between are.
* It reads uncommitted transactions: an aborted transaction's records would be processed.
  Here the consumer reads with isolation.level=read_committed.
* Faust's fetch (`getmany`) takes a batch out of the client and then silently drops the rest of
  it when the flow stops or the generation changes part-way, and the records of a partition
  that left its active set meanwhile: nothing seeks back to them, and the next record handed
  over came from past them (seen in the chaos test: ~560 records of a partition committed over,
  their stock commits never applied). Here a record not handed over breaks its partition at
  it, and the partition is rewound to it like any record not processed.
* Every record is delivered directly when its delivery cannot block, instead of inside two
  tasks and an `asyncio.wait` each (`_drain_messages`), and the commit due by number of
  records runs beside the fetch loop instead of holding every delivery (`_commit_by_count`).
* Partitions the app took out of the fetch on purpose (`paused_by_app`) stay out when Faust's
  queue flow control would put them back (`on_buffer_drop`).
* No commit while a record the worker sent (an event or a table's changelog write) failed to
  reach the broker (`_commit`, orderstream/faust_ext/producer.py); the worker then stops with an
  error and, restarted, processes those partitions again from their committed offsets.
* A worker that was paused (SIGSTOP, a VM freeze, a long stall) past a share of the session
  timeout may have lost its partitions to another worker without knowing it yet: it is fenced
  (`fenced`): it applies nothing and sends nothing until the group confirms its membership or a
  rebalance gives it partitions again, so no stale write of it lands after the new owner's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from time import monotonic
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode import Service
from mode.utils.futures import notify

from orderstream.faust_ext.ledger import Ledger
from orderstream.faust_ext.write_back import write_sent
from orderstream.kafka import metadata_guard
from orderstream.observability import metrics
from orderstream.settings import get_settings

log = logging.getLogger(__name__)

REPAIR_EVERY_S = 0.25
CLOCK_EVERY_S = 0.25
PAUSE_SHARE = 0.5  # of the session timeout: a pause this long fences the worker


class DeliveryFailed(Exception):
    """Records the worker sent did not reach the broker: the worker stops (module doc)."""


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, reading committed records only, with a short fetch wait."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # aiokafka reads it when it starts
        consumer._fetch_max_wait_ms = get_settings().fetch_max_wait_ms  # Faust's: 1,500 ms
        metadata_guard.guard(consumer._client, "consumer")  # its metadata task never dies
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        """The end of each partition a recovery reads up to: the broker's answer, which for a
        read_committed consumer is the last stable offset. (Faust's exactly-once path asks the
        client for the last stable offset it saw in a fetch: none for a partition not fetched
        yet, and the recovery refused to start.)"""
        client = self._ensure_consumer()
        return cast(Mapping[TP, int], await client.end_offsets(partitions))


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
        # Seeks per partition: a batch fetched before a seek must not be admitted after it
        # (its records lie past the position sought to); such a partition is sought again.
        self._seeks: dict[TP, int] = {}
        self._stale: set[TP] = set()
        self.delivery_failing = False  # records sent failed: the worker is stopping
        self._last_tick = monotonic()
        self._clock_running = False  # no pause is noticed before the consumer runs
        self._fenced_since: float | None = None
        self._fenced_generation: tuple[int, bool] | None = None
        self._count_commit: asyncio.Future[Any] | None = None  # the commit by number running
        super().__init__(*args, **kwargs)
        self._pause_limit = self.app.conf.broker_session_timeout * PAUSE_SHARE

    def faults(self) -> dict[str, object]:
        """What keeps this worker from committing or processing (empty: nothing)."""
        found: dict[str, object] = {}
        if self.fenced():
            found["fenced"] = "paused past a share of the session timeout: waiting for the group"
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
        """Whether an agent may apply this record: it is the current fetch of its offset, no
        record before it in its partition was left unprocessed, and the worker is not fenced."""
        if self.fenced():
            self._break(message, "the worker was paused: fenced")
            return False
        return self.ledger.is_current(message.tp, message.offset, message)

    # -- fencing after a pause ----------------------------------------------------------------

    def fenced(self) -> bool:
        """Whether the worker may have lost its partitions during a pause (module doc)."""
        if (
            self._fenced_since is None
            and self._clock_running
            and monotonic() - self._last_tick > self._pause_limit
        ):
            self._fence()  # the clock has not run since the pause: this caller is first
        return self._fenced_since is not None

    def _fence(self) -> None:
        gap = monotonic() - self._last_tick
        self._fenced_since = monotonic()
        self._fenced_generation = self._group_generation()
        metrics.worker_fenced(True)
        log.error(
            "this worker was paused for %.1f s (session timeout %.0f s): its partitions may "
            "belong to another worker now; nothing is applied or sent until the group confirms "
            "its membership or gives it partitions again",
            gap,
            self.app.conf.broker_session_timeout,
        )

    def _unfence(self, why: str) -> None:
        if self._fenced_since is not None:
            self._fenced_since, self._last_tick = None, monotonic()
            metrics.worker_fenced(False)
            log.warning("fence lifted: %s", why)

    def _group_generation(self) -> tuple[int, bool] | None:
        """(generation, rejoin needed) of the group membership, read from the client."""
        client = getattr(self._thread, "_consumer", None)
        coordinator = getattr(client, "_coordinator", None)
        if coordinator is None:
            return None
        return coordinator.generation, coordinator._rejoin_needed_fut.done()

    def request_rejoin(self) -> None:
        """Ask the group for a rebalance (a task of this worker was fenced by the broker)."""
        client = getattr(self._thread, "_consumer", None)
        coordinator = getattr(client, "_coordinator", None)
        if coordinator is None:
            return
        loop = getattr(self._thread, "thread_loop", None)
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(coordinator.request_rejoin)
        else:
            coordinator.request_rejoin()

    @Service.task
    async def _pause_clock(self) -> None:
        """Notice pauses (the clock stops with the process) and lift the fence once the group
        still has this member after three heartbeats (a rebalance lifts it too)."""
        confirm_after = 3 * self.app.conf.broker_heartbeat_interval + 1.0
        self._last_tick, self._clock_running = monotonic(), True
        while not self.should_stop:
            await self.sleep(CLOCK_EVERY_S)
            now = monotonic()
            if self._fenced_since is None and now - self._last_tick > self._pause_limit:
                self._fence()
            self._last_tick = now
            if self._fenced_since is not None and now - self._fenced_since > confirm_after:
                membership = self._group_generation()
                same = membership is not None and membership == self._fenced_generation
                if same and not cast(tuple[int, bool], membership)[1]:
                    self._unfence("the group still has this member, same generation")

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self._unfence("a rebalance gave this worker its partitions")
        await super().on_partitions_assigned(assigned, generation_id)

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
                self._break(message, "dropped by its stream in a rebalance")
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

    def _stop_at(self, message: Any, reason: str, retry_in: float, *, fault: bool) -> None:
        tp = message.tp
        if self._break(message, reason, retry_at=monotonic() + retry_in):
            self.pause_partitions([tp])
            self._waiting[tp] = fault

    def _break(self, message: Any, reason: str, *, retry_at: float = 0.0) -> bool:
        """Break the record's partition at it, if this fetch of it is the ledger's (a record
        fetched before a seek is not: the partition was sought back before it already)."""
        tp, offset = message.tp, message.offset
        if not self.ledger.holds(tp, offset, message):
            return False
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
        # The count toward the next commit by number (`commit_every`: `_commit_by_count`) starts
        # again: the periodic commit covers what was acknowledged until now. Below
        # ORDERSTREAM_COMMIT_EVERY records a commit interval, only the periodic commit runs.
        self._n_acked = 0
        producer = cast(Any, self.app.producer)
        await asyncio.sleep(0)  # delivery callbacks of the flush's last batches run first
        if producer.failed_sends():
            return False
        write_sent(self.app)  # the write-back tables' values, acknowledged by the flush
        return bool(await super()._commit(offsets))

    # -- seeks ------------------------------------------------------------------------------

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._seeks[partition] = self._seeks.get(partition, 0) + 1

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset (Faust does it after a rebalance).
        aiokafka's seek_to_committed leaves a partition with no commit yet (or offset 0) where
        it is, past records never processed: those are sought to their first record.

        The seeks await the broker one partition at a time, and the fetch loop runs meanwhile:
        records it took from the client after a partition's seek moved the client's position
        past the committed offset, and the ledger reset below forgets them (their agents skip
        them). So every partition admits nothing until it is sought again to where its ledger
        starts (`_seek_stale`, between two fetches). Without that, the next fetch came from past
        them and was admitted: seen in the chaos test, 237 orders of one partition committed
        over after a rebalance."""
        await super().perform_seek()
        unsought = [
            tp
            for tp in self.assignment()
            if not self._committed_offset.get(tp) and not self._is_changelog_tp(tp)
        ]
        first: dict[TP, int] = {}
        if unsought:
            earliest = await self.earliest_offsets(*unsought)
            first = {tp: max(earliest.get(tp) or 0, 0) for tp in unsought}
            for tp, offset in first.items():
                await super().seek(tp, offset)
        for tp in self.assignment():
            self._seeks[tp] = self._seeks.get(tp, 0) + 1
            self.ledger.reset(tp, self._committed_offset.get(tp) or first.get(tp, 0))
            if self._is_changelog_tp(tp):
                self._stale.discard(tp)  # Faust's recovery reads them
            else:
                self._stale.add(tp)
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
        if self.fenced():
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
            metrics.partition_rewound("fault" if faulted else "unprocessed")
            log.warning("%s/%d rewound to %d (%s)", part.topic, part.partition, offset, reason)
            rewound += 1
        return rewound

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
            await self._stop_loudly(failed, producer.last_error)
            return
        await self.rewind_broken()
        metrics.partitions_faulted(sum(self._waiting.values()))

    def _admits(self, tp: TP, message: Any, fetched_after: Mapping[TP, int]) -> bool:
        """Whether a fetched record may be handed to the agents (then the ledger has it).

        Not one fetched before a seek of its partition: the partition is sought again, to the
        next record the ledger expects (`_seek_stale`, between two fetches, once no rebalance
        runs), and nothing of it is admitted until then. (A later batch came from past the
        records the stale one skipped: seen in the chaos test, a recovery's seek landed while a
        batch was handed over, the seek again waited for the rebalance to end, and the next
        batch's records were admitted and committed over 62 orders never processed.)"""
        if self._fetched_before_seek(tp, fetched_after):
            self._stale.add(tp)
            return False
        return self.ledger.admit(tp, message.offset, message)

    def _fetched_before_seek(self, tp: TP, fetched_after: Mapping[TP, int]) -> bool:
        """Whether a record of `tp` from a batch fetched after `fetched_after`'s seeks is
        stale: its partition is waiting to be sought back, or was sought since."""
        stale = self._stale
        return bool(stale and tp in stale) or self._seeks.get(tp, 0) != fetched_after.get(tp, 0)

    async def _seek_stale(self) -> None:
        """Seek partitions whose records were refused as fetched across a seek back to the next
        record the ledger expects (the fetch may have moved past records never admitted).
        Called by the fetch loop between two fetches, so the next fetch follows these seeks."""
        broken = self.ledger.broken()
        assigned = self.assignment()
        for tp in list(self._stale):
            self._stale.discard(tp)
            if tp in broken or tp not in assigned:
                continue  # the rewind to its broken record, or a rebalance, seeks it
            await self.seek(tp, self.ledger.next_offset(tp))

    async def _stop_loudly(self, failed: int, error: BaseException | None) -> None:
        """Records this worker sent did not reach the broker after the client's retries: no
        commit passes them (`_commit`), and the worker stops with an error, as a Kafka Streams
        thread does on a production error. Restarted (by its supervisor), it processes every
        partition again from its committed offsets: the records processed again re-send their
        events and re-write their state, so nothing that failed is lost."""
        if self.delivery_failing:
            return
        self.delivery_failing = True
        metrics.delivery_failing(True)
        log.error(
            "%d records this worker sent did not reach the broker (last error: %r): nothing is "
            "committed over them; the worker stops, and processes them again from the committed "
            "offsets once restarted. Check the topics (max.message.bytes, ACLs, in-sync "
            "replicas) and the broker",
            failed,
            error,
        )
        metrics.partition_rewound("send_failed")
        await self.app.crash(DeliveryFailed(f"{failed} records not delivered: {error!r}"))

    # -- Faust's flow control ---------------------------------------------------------------

    def stopped_on_purpose(self, tp: TP) -> bool:
        """Out of the fetch on purpose: the app's bound, or waiting to be rewound."""
        return tp in self.paused_by_app or tp in self._waiting

    def on_buffer_drop(self, tp: TP) -> None:
        if tp not in self.paused_by_app:  # the app puts it back itself
            super().on_buffer_drop(tp)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:  # noqa: ASYNC109 (Faust's signature)
        """Faust 0.15.3's fetch of one batch, with every record it would drop left behind in
        the ledger (`_left_behind`) instead of lost."""
        fetched_after = self._seeks.copy()
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        records_it = self.scheduler.iterate(records)
        if not self.flow_active:
            for tp, record in records_it:  # the seek below rewinds every assigned partition
                self._left_behind(tp, record.offset, fetched_after, "fetched while stopped")
            try:
                await self.perform_seek()
            except Exception as ex:
                self.log.warning(f"exception performing seek when flow not active {ex}")
            return
        to_message, buffered = self._to_message, self._buffered_partitions
        why = ""
        for tp, record in records_it:
            if not why:
                if not self.flow_active:
                    why = "the flow stopped part-way through its batch"
                elif self.app.consumer_generation_id != generation_id:
                    why = "the generation changed part-way through its batch"
            if why:
                self._left_behind(tp, record.offset, fetched_after, why)
            elif active_partitions is None or tp in active_partitions or tp in buffered:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)
            else:
                self._left_behind(tp, record.offset, fetched_after, "its partition was paused")

    def _left_behind(self, tp: TP, offset: int, fetched_after: Mapping[TP, int], why: str) -> None:
        """A record fetched and not handed over: its partition breaks at it (and is rewound to
        it), unless a seek since the fetch made the record stale. Changelog partitions are left
        to Faust's recovery, which seeks them itself."""
        if self._fetched_before_seek(tp, fetched_after):
            return  # stale: sought again (`_admits`)
        if self._is_changelog_tp(tp):
            return
        if self.ledger.left_behind(tp, offset, f"not handed over: {why}"):
            metrics.records_reread()

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

    def _commit_by_count(self) -> None:
        """The commit by number (`commit_every` records acknowledged since the last commit of
        any kind), started beside the fetch loop. Faust's loop awaits it, holding every delivery
        for the flush and the commit: a stall of tens to hundreds of milliseconds each time,
        which set the latency of a busy worker (at 330 orders/s, p50 72 ms and p99 189 ms
        instead of 33 and 88: docs/performance.md). One at a time: Faust's `commit` joins one in
        progress, and a commit by number is not started again while one is running."""
        self._n_acked = 0
        running = self._count_commit
        if running is None or running.done():
            # an error crashes the consumer, as it did raised in the fetch loop (mode's task)
            self._count_commit = self.add_future(self.commit())

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by workers
        """Faust 0.15.3's fetch loop, with records admitted by the ledger (no gap filling, no
        read-offset check), delivered directly when that cannot block, and commits by number
        started beside it (`_commit_by_count`)."""
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
        commit_every = self._commit_every
        admits = self._admits
        seeks, stale = self._seeks, self._stale
        num_since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                fetched_after = seeks.copy()  # the seeks this batch's records may follow
                ait = getmany(timeout=1.0)
                await self.sleep(0)  # getmany may return at once, in a loop: let others run
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > 100:
                            await asyncio.sleep(0)
                            num_since_yield = 0
                        if not admits(tp, message, fetched_after):
                            continue  # stale, or past a record not processed yet
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._commit_by_count()
                        if not await self._deliver(message):
                            self._break(message, "delivery abandoned in a rebalance")
                    unset_flag(CONSUMER_FETCHING)
                    if stale and not self.app.rebalancing:
                        await self._seek_stale()
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

"""Fixes for Faust behaviours that lose data under at-least-once processing (1-3), and for two
of its per-record costs (4-5).

1. Offsets it never delivered count as done.

When a record arrives more than one offset after the last one Faust read from its partition,
faust-streaming (0.15) assumes the offsets in between do not exist (compaction, transaction
markers) and marks them acknowledged, so the next commit moves past them; and a commit may
start one offset past the committed one. Our input topics are neither compacted nor
transactional: such a jump means records were fetched but never handed to an agent (seen after
a kill -9 and a restart under load: the orders in between never got a saga). So the jump is
logged and counted instead, the commit stops before the hole, and the partition watchdog seeks
the consumer back to the committed offset: the records are read again (at-least-once; every
handler is idempotent) instead of lost.

2. A commit before the table writes it covers are sent. Table writes (changelog records) wait in
Faust's ProducerBuffer; before committing offsets Faust flushes it, but that flush gives up when
no record leaves the buffer for 0.1 s (a busy loop) and ignores the record being sent: the
commit then covers events whose state change is not in the changelog yet. A kill -9 at that
moment loses the change for good (seen in the chaos test: a CommitStock applied, its offset
committed, the hold back after the restart). The flush now waits until every record put before
it has been handed to the Kafka producer, whose own flush then waits for the broker.

3. Records skipped on a rebalance count as done. A Faust stream drops the events it still holds
from before a rebalance (another consumer generation, or flow control stopped) and acknowledges
them, so a commit can pass them before the consumer seeks back: never processed, never read
again. An event acknowledged in that state is now held back instead (`hold_back`): neither
acknowledged nor waited for, so the commit stops before it and it is read again.

And one for speed: 4. Faust's fetch loop hands each record to the streams inside
`wait_first(deliver(record), suspend_flow.wait())`: two asyncio tasks and an `asyncio.wait`
per record, so that a delivery blocked on a full buffer can be abandoned when a rebalance
suspends the flow. A delivery can only block on flow control, a full producer buffer, the
callback map's lock, or a full stream queue; when none of these holds (the check and the
delivery run with no await in between) the record is delivered directly (`_drain_messages`).

5. Table recovery reads changelog records one by one, and for each it started a timeout
(`asyncio.wait_for`), formatted two debug lines whether logged or not, and recomputed what is
left to recover over every partition. `_slurp_changelogs` does the same work per record with the
queue's next record taken directly when one is waiting, and looks at what is left when the queue
runs empty or every RECOVERY_CHECK_EVERY records.

6. And a partition far behind its changelog is not replayed record by record at all: after Faust
built the offsets to recover from, `app/bulk_restore.py` reads those partitions in bulk into
RocksDB and moves the offsets on (`_build_offsets`).

7. Faust's table manager sleeps 1 s before it starts, for tables defined after the app starts;
ours are all defined when their modules are imported, before the worker starts, so every worker
start (and readiness after a restart) skips that second (`_start_tables`).

8. Partitions the app took out of the fetch on purpose (`held_out`: the order intake at its
bound of open orders) stay out: Faust puts a partition back whenever the stream queue it filled
drains (`on_buffer_drop`), which let thousands of orders past the bound."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from time import monotonic
from typing import Any, cast

from faust.events import Event
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.transport.producer import ProducerBuffer
from faust.types.tuples import ack_lock
from faust.utils.tracing import finish_span

from app import bulk_restore, metrics
from app.settings import get_settings

log = logging.getLogger(__name__)

#: Partitions taken out of the fetch by the app, that Faust's queue flow control must not put back.
held_out: set[Any] = set()

#: Partitions where a jump was seen: the watchdog repairs their hole at its next check.
reported: set[Any] = set()
#: Partitions with records held back: the watchdog seeks them back at its next check.
held: set[Any] = set()


async def _report_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    committed = self._committed_offset.get(tp)
    first = offset_from if committed is None else max(offset_from, committed)
    if first <= offset_to - 1:
        reported.add(tp)
        metrics.records_skipped(offset_to - first)
        log.warning(
            "%s/%d: offsets %d..%d were fetched but not delivered; left uncommitted, to be "
            "read again",
            tp.topic,
            tp.partition,
            first,
            offset_to - 1,
        )


_faust_new_offset = Consumer._new_offset


def _new_offset(self: Any, tp: Any) -> int | None:
    """Faust's next commit for `tp`, but never over a hole: Faust lets the first acknowledged
    offset be one past the committed one, which would commit over a single lost record."""
    if hole(self, tp) is not None:
        return None
    result: int | None = _faust_new_offset(self, tp)
    return result


def hole(consumer: Any, tp: Any) -> tuple[int, int] | None:
    """(committed offset, first acknowledged offset) when records between them were skipped."""
    acked = consumer._acked.get(tp)
    committed = consumer._committed_offset.get(tp)
    if acked and committed is not None and min(acked) > committed:
        return committed, min(acked)
    return None


_faust_put = ProducerBuffer.put


def _put(self: Any, fut: Any) -> None:
    self._os_put = getattr(self, "_os_put", 0) + 1
    _faust_put(self, fut)


async def _send_pending(self: Any, fut: Any) -> None:
    try:
        await fut.message.channel.publish_message(fut, wait=False)
    finally:
        self._os_sent = getattr(self, "_os_sent", 0) + 1


async def _flush(self: Any) -> None:
    """Return once every record put before the call is with the Kafka producer."""
    target = getattr(self, "_os_put", 0)
    while getattr(self, "_os_sent", 0) < target:
        if self.state != "running":
            if self.size:
                raise RuntimeError("Cannot flush: Producer not Running")
            return
        self.message_sent.clear()
        with contextlib.suppress(TimeoutError):  # look again: the producer may have stopped
            await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)


def hold_back(consumer: Any, message: Any) -> None:
    """Keep a record out of the commit: Faust will neither acknowledge it nor wait for it, so
    the commit stops before it until it is read again (a seek back to the committed offset)."""
    with ack_lock:
        message.acked = True
    consumer._unacked_messages.discard(message)


_faust_event_ack = Event.ack


def _event_ack(self: Any) -> bool:
    app = self.app
    message = self.message
    stale = message.generation_id != app.consumer_generation_id
    if stale or not app.flow_control.is_active():  # Faust dropped it, or it is being dropped
        hold_back(app.consumer, message)
        held.add(message.tp)
        metrics.records_skipped(1)
        return False
    result: bool = _faust_event_ack(self)
    return result


def _delivers_at_once(consumer: Any, tp: Any) -> bool:
    """Whether handing a record of `tp` to its streams cannot block (Faust's on_message)."""
    app = consumer.app
    conductor = app.topics
    buffer = app.producer.buffer
    if (
        consumer.suspend_flow.is_set()
        or not app.flow_control.is_active()
        or buffer.size > buffer.max_messages
        or conductor._tp_to_callback_lock.locked()
    ):
        return False
    channels = conductor._tp_index.get(tp)
    return bool(channels) and not any(chan.queue.full() for chan in channels)


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
    """Faust 0.15.3's Consumer._drain_messages, with records delivered directly when the
    delivery cannot block (see 4. above); otherwise as Faust does."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
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
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0) > 1 and r_offset
                        if gap and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if _delivers_at_once(self, tp):
                            await callback(message)
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
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


RECOVERY_CHECK_EVERY = 1000


async def _slurp_changelogs(self: Any) -> None:  # pragma: no cover - Faust's loop, run by tests
    """Faust 0.15.3's Recovery._slurp_changelogs, cheaper per record (see 5. above). A record
    of a partition that is neither active nor standby is skipped (Faust applied it to the table
    of the previous record)."""
    changelog_queue = self.tables.changelog_queue
    tp_to_table = self.tp_to_table
    active_tps, standby_tps = self.active_tps, self.standby_tps
    active_offsets, standby_offsets = self.active_offsets, self.standby_offsets
    active_received = self._active_events_received_at
    standby_received = self._standby_events_received_at
    buffers, buffer_sizes = self.buffers, self.buffer_sizes
    processing_times = self._processing_times
    max_samples = self.num_samples_required_for_estimate

    async def detect_aborted_tx() -> None:
        for tp, highwater in self.active_highwaters.items():
            offset = self.active_offsets[tp]
            if highwater is not None and offset is not None and offset < highwater:
                position = await self.app.consumer.position(tp)
                if position is not None and position >= highwater:
                    log.info("Aborted tx until highwater for %s", tp)
                    self.active_offsets[tp] = highwater

    async def check_recovery_end(idle_count: int = 0) -> None:
        if self.app.in_transaction and idle_count > 1:
            await detect_aborted_tx()
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()  # apply anything still buffered
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            self.signal_recovery_end.set()

    def check_standbys() -> None:
        if self._standbys_span is None and self.tables.standbys_ready:
            return
        if not self.standby_remaining_total():
            if self._standbys_span:
                finish_span(self._standbys_span)
                self._standbys_span = None
            self.tables.on_standbys_ready()

    timeout_count = 0
    since_check = 0
    while not self.should_stop:
        try:
            self.signal_recovery_end.clear()
            if changelog_queue.empty():
                try:
                    event = await asyncio.wait_for(changelog_queue.get(), timeout=5.0)
                except TimeoutError:
                    timeout_count += 1
                    if self.should_stop:
                        return
                    await check_recovery_end(idle_count=timeout_count)
                    continue
            else:
                event = changelog_queue.get_nowait()
            now = monotonic()
            timeout_count = 0
            message = event.message
            tp, offset = message.tp, message.offset
            is_active = tp in active_tps
            if is_active:
                offsets = active_offsets
                active_received[tp] = now
            elif tp in standby_tps:
                offsets = standby_offsets
                standby_received.setdefault(tp, now)
            else:
                log.warning("recovery: record of unknown partition %s@%d skipped", tp, offset)
                continue
            table = tp_to_table[tp]
            bufsize = buffer_sizes.get(tp)
            if bufsize is None:
                size = table.recovery_buffer_size if is_active else table.standby_buffer_size
                bufsize = buffer_sizes[tp] = size
            seen = offsets.get(tp)
            if seen is None or offset > seen:
                offsets[tp] = offset
                buf = buffers[table]
                buf.append(event)
                await table.on_changelog_event(event)
                if len(buf) >= bufsize:
                    table.apply_changelog_batch(buf)
                    buf.clear()
                    self._last_flush_at = now
                if is_active:
                    done_at = monotonic()
                    last = self._last_active_event_processed_at
                    if last is not None:
                        processing_times.append(done_at - last)
                        if len(processing_times) > max_samples:
                            processing_times.popleft()
                    self._last_active_event_processed_at = done_at
            since_check += 1
            if changelog_queue.empty() or since_check >= RECOVERY_CHECK_EVERY:
                since_check = 0
                await check_recovery_end()
                check_standbys()
        except Exception as exc:
            log.warning("Error in recovery %r", exc)


_faust_build_offsets = Recovery._build_offsets


async def _build_offsets(
    self: Any, consumer: Any, tps: Any, destination: Any, title: str
) -> None:  # pragma: no cover - Faust's recovery step, run by the integration tests
    await _faust_build_offsets(self, consumer, tps, destination, title)
    if title == "active" and tps:
        await bulk_restore.catch_up(self, get_settings(), tps, destination)


_faust_on_buffer_drop = Consumer.on_buffer_drop


def _on_buffer_drop(self: Any, tp: Any) -> None:
    if tp not in held_out:  # the app puts it back itself (removing it from held_out first)
        _faust_on_buffer_drop(self, tp)


async def _start_tables(self: Any) -> None:
    """Faust 0.15.3's TableManager.on_start without its first `await self.sleep(1.0)`."""
    if not self.should_stop:
        await self._update_channels()
        await self.recovery.start()


def quiet_root_logger() -> None:
    """Faust leaves the root logger at DEBUG and filters in the handlers, so every debug call
    on the hot path (one per message sent) still builds a log record: ~9% of a worker's CPU.
    Raise the root logger to the level the handlers print at (call once the worker logs)."""
    # The terminal spinner's handler takes everything and shows none of it.
    handlers = [h for h in logging.root.handlers if type(h).__name__ != "SpinnerHandler"]
    level = min((h.level for h in handlers if h.level), default=logging.INFO)
    if logging.root.level < level:
        logging.root.setLevel(level)


def apply() -> None:
    TableManager.on_start = _start_tables  # type: ignore[method-assign]
    Consumer.on_buffer_drop = _on_buffer_drop  # type: ignore[method-assign]
    Recovery._build_offsets = _build_offsets  # type: ignore[method-assign]
    task = cast(Any, Recovery)._slurp_changelogs
    task.fun = _slurp_changelogs  # a Service.task: the worker starts task.fun
    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    Event.ack = _event_ack  # type: ignore[method-assign]
    ProducerBuffer.put = _put  # type: ignore[method-assign]
    ProducerBuffer._send_pending = _send_pending  # type: ignore[method-assign]
    ProducerBuffer.flush = _flush  # type: ignore[method-assign]
    Consumer._add_gap = _report_gap  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]

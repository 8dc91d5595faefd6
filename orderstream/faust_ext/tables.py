"""The worker's table manager and table recovery: Faust's, starting at once and restoring a
partition far behind its changelog in bulk.

* Faust's table manager sleeps 1 s before it starts, for tables defined after the app starts;
  ours are all defined when their modules are imported, so every worker start (and readiness
  after a restart) skips that second (`TableManager.on_start`).
* Recovery reads changelog records one by one, and for each Faust started a timeout, formatted
  two debug lines whether logged or not, and recomputed what is left over every partition.
  `Recovery._slurp_changelogs` does the same work per record with the queue's next record taken
  directly when one is waiting, and looks at what is left when the queue runs empty or every
  RECOVERY_CHECK_EVERY records.
* A partition far behind its changelog is not replayed record by record at all: after Faust
  built the offsets to recover from, orderstream/faust_ext/bulk_restore.py reads those partitions in
  bulk into RocksDB and moves the offsets on (`Recovery._build_offsets`).
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import Any

from faust.tables import manager as faust_manager
from faust.tables import recovery as faust_recovery
from faust.utils.tracing import finish_span
from mode import Service

from orderstream.faust_ext import bulk_restore, write_back
from orderstream.settings import get_settings

log = logging.getLogger(__name__)

RECOVERY_CHECK_EVERY = 1000


class Recovery(faust_recovery.Recovery):
    async def _build_offsets(
        self, consumer: Any, tps: Any, destination: Any, title: str
    ) -> None:  # pragma: no cover - Faust's recovery step, run by the integration tests
        await super()._build_offsets(consumer, tps, destination, title)
        if title == "active" and tps:
            await bulk_restore.catch_up(self, get_settings(), tps, destination)

    @Service.task
    async def _slurp_changelogs(self) -> None:  # pragma: no cover - Faust's loop, run by tests
        """Faust 0.15.3's Recovery._slurp_changelogs, cheaper per record (module doc). A record
        of a partition that is neither active nor standby is skipped (Faust applied it to the
        table of the previous record)."""
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


class TableManager(faust_manager.TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery  # type: ignore[return-value]

    async def on_start(self) -> None:
        """Faust 0.15.3's TableManager.on_start without its first `await self.sleep(1.0)`."""
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()

    async def on_rebalance(
        self, assigned: Any, revoked: Any, newly_assigned: Any, generation_id: int = 0
    ) -> None:
        """Faust's, after the write-back tables forgot every value not committed yet
        (orderstream/faust_ext/write_back.py), of kept partitions too: a rebalance aborts every open
        transaction (orderstream/faust_ext/transactions.py) and each assigned partition is processed
        again from its committed offset, its table partitions restored from their changelogs
        up to the end. A partition this worker gets back (paused past its session timeout, it
        lost it and is given it again) may have had another owner meanwhile: values kept from
        before would be flushed over that owner's (seen: holds of confirmed orders put back)."""
        write_back.drop_partitions(self.app, write_back.cached_partitions(self.app))
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

"""The commit-over-a-hole fix: records Faust fetched but never delivered are never committed."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from types import SimpleNamespace
from typing import Any, cast

import pytest
from faust.types import TP
from intervaltree import IntervalTree

from app import faust_patches

TP0 = TP("order-events", 0)


def consumer(committed: int | None, acked: list[int]) -> Any:
    return SimpleNamespace(
        _acked=defaultdict(list, {TP0: list(acked)}),
        _acked_index=defaultdict(set, {TP0: set(acked)}),
        _committed_offset=defaultdict(lambda: None, {TP0: committed}),
        _gap=defaultdict(IntervalTree),
    )


def test_contiguous_acks_commit_as_faust_does() -> None:
    c = consumer(committed=10, acked=[10, 11, 12])
    assert faust_patches.hole(c, TP0) is None
    assert faust_patches._new_offset(c, TP0) == 13


@pytest.mark.parametrize("first_acked", [11, 15])
def test_no_commit_over_records_never_acknowledged(first_acked: int) -> None:
    # Faust itself would commit 14 when the first acked offset is 11 (one past the committed 10)
    c = consumer(committed=10, acked=list(range(first_acked, first_acked + 3)))
    assert faust_patches.hole(c, TP0) == (10, first_acked)
    assert faust_patches._new_offset(c, TP0) is None


async def test_a_jump_is_reported_not_acknowledged() -> None:
    c = consumer(committed=10, acked=[])
    faust_patches.reported.clear()
    await faust_patches._report_gap(c, TP0, 11, 20)  # offsets 11..19 never delivered
    assert TP0 in faust_patches.reported
    assert len(c._gap[TP0]) == 0  # Faust would have marked 11..20 as done
    faust_patches.reported.clear()


def test_applied_to_faust() -> None:
    from faust.transport.consumer import Consumer

    import app.application  # noqa: F401  (applies the patches)

    assert Consumer._add_gap is faust_patches._report_gap
    assert Consumer._new_offset is faust_patches._new_offset


class _SlowChannel:
    """Hands a record to 'Kafka' after `delay_s` (a busy event loop, a full producer)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.published: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(self.delay_s)
        self.published.append(fut.n)


async def test_the_flush_before_a_commit_waits_for_every_table_write() -> None:
    from faust.transport.producer import ProducerBuffer

    import app.application  # noqa: F401  (applies the patches)

    buffer = ProducerBuffer()
    buffer.app = cast(Any, SimpleNamespace(conf=SimpleNamespace(producer_threaded=False)))
    channel = _SlowChannel(delay_s=0.15)  # slower than Faust's 0.1 s patience
    await buffer.start()
    try:
        for n in range(3):
            buffer.put(cast(Any, SimpleNamespace(n=n, message=SimpleNamespace(channel=channel))))
        await buffer.flush()
        # Faust's own flush returned after the first 0.1 s without a record sent
        assert channel.published == [0, 1, 2]
    finally:
        await buffer.stop()


class _Flow:
    def __init__(self, active: bool) -> None:
        self.active = active

    def is_active(self) -> bool:
        return self.active


class _Message:
    def __init__(self, generation_id: int) -> None:
        self.generation_id, self.acked = generation_id, False
        self.tp = TP0
        self.final_acks = 0

    def ack(self, consumer: Any) -> bool:  # Faust's own path
        self.final_acks += 1
        return True


@pytest.mark.parametrize(
    ("generation", "flowing", "acknowledged"),
    [(2, True, True), (1, True, False), (2, False, False)],
)
def test_an_event_dropped_by_a_rebalance_is_held_back_not_acknowledged(
    generation: int, flowing: bool, acknowledged: bool
) -> None:
    message = _Message(generation)
    consumer = SimpleNamespace(_unacked_messages={message})
    event = SimpleNamespace(
        message=message,
        app=SimpleNamespace(
            consumer=consumer, consumer_generation_id=2, flow_control=_Flow(flowing)
        ),
    )
    faust_patches.held.clear()
    assert faust_patches._event_ack(event) is acknowledged
    assert message.final_acks == (1 if acknowledged else 0)
    if not acknowledged:  # Faust will not acknowledge it later either, nor wait for it
        assert message.acked and message not in consumer._unacked_messages
        assert faust_patches.held == {TP0}  # the watchdog seeks the partition back
    faust_patches.held.clear()


def _delivery(
    *, suspended: bool = False, flow: bool = True, buffered: int = 0, full: bool = False
) -> Any:
    """A consumer whose app has one channel on TP0 (its queue full or not)."""
    queue = SimpleNamespace(full=lambda: full)
    app = SimpleNamespace(
        topics=SimpleNamespace(
            _tp_index={TP0: [SimpleNamespace(queue=queue)]},
            _tp_to_callback_lock=asyncio.Lock(),
        ),
        producer=SimpleNamespace(buffer=SimpleNamespace(size=buffered, max_messages=100)),
        flow_control=SimpleNamespace(is_active=lambda: flow),
    )
    event = asyncio.Event()
    if suspended:
        event.set()
    return SimpleNamespace(app=app, suspend_flow=event)


def test_a_record_is_delivered_directly_only_when_nothing_can_block() -> None:
    assert faust_patches._delivers_at_once(_delivery(), TP0)
    assert not faust_patches._delivers_at_once(_delivery(), TP("other", 0))  # no channel
    for blocked in (
        _delivery(suspended=True),  # a rebalance is stopping the flow
        _delivery(flow=False),  # flow control stopped: the delivery would wait
        _delivery(buffered=101),  # the producer buffer is over its limit: it would flush first
        _delivery(full=True),  # the stream's queue is full: the put would wait
    ):
        assert not faust_patches._delivers_at_once(blocked, TP0)


def test_the_fetch_loop_is_replaced() -> None:
    from faust.transport.consumer import Consumer

    import app.application  # noqa: F401  (applies the patches)

    assert Consumer._drain_messages is faust_patches._drain_messages


class _Table:
    recovery_buffer_size = 2
    standby_buffer_size = 2

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def on_changelog_event(self, event: Any) -> None:
        return None

    def apply_changelog_batch(self, batch: list[Any]) -> None:
        if batch:
            self.batches.append([e.message.offset for e in batch])


class _Recovery:
    """What Faust's Recovery gives the changelog loop, for one active partition."""

    def __init__(self, table: _Table, records: list[tuple[Any, int]]) -> None:
        self.tables = SimpleNamespace(
            changelog_queue=asyncio.Queue(),
            standbys_ready=True,
            on_standbys_ready=lambda: None,
        )
        for tp, offset in records:
            event = SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset))
            self.tables.changelog_queue.put_nowait(event)
        self.tp_to_table = {TP0: table}
        self.active_tps, self.standby_tps = {TP0}, set()
        self.active_offsets: dict[Any, int] = {}
        self.standby_offsets: dict[Any, int] = {}
        self.active_highwaters = {TP0: 3}
        self._active_events_received_at: dict[Any, float] = {}
        self._standby_events_received_at: dict[Any, float] = {}
        self.buffers: dict[Any, list[Any]] = defaultdict(list)
        self.buffer_sizes: dict[Any, int] = {}
        self._processing_times: deque[float] = deque()
        self.num_samples_required_for_estimate = 10
        self._last_active_event_processed_at = None
        self._last_flush_at = 0.0
        self.signal_recovery_end = asyncio.Event()
        self.app = SimpleNamespace(in_transaction=False)
        self.in_recovery = True
        self._actives_span = self._standbys_span = None

    @property
    def should_stop(self) -> bool:
        return self.tables.changelog_queue.empty() and not self.in_recovery

    def need_recovery(self) -> bool:
        return self.active_offsets.get(TP0, -1) < 2

    def flush_buffers(self) -> None:
        for table, buffer in self.buffers.items():
            table.apply_changelog_batch(buffer)
            buffer.clear()

    def _set_recovery_ended(self) -> None:
        self.in_recovery = False

    def standby_remaining_total(self) -> int:
        return 0


async def test_recovery_applies_each_record_once_in_order_then_signals_the_end() -> None:
    table = _Table()
    # offset 1 twice (a re-read), and a record of a partition this worker does not recover
    records = [(TP0, 0), (TP0, 1), (TP0, 1), (TP("elsewhere", 3), 7), (TP0, 2)]
    recovery = _Recovery(table, records)
    await asyncio.wait_for(faust_patches._slurp_changelogs(recovery), timeout=5)
    assert table.batches == [[0, 1], [2]]  # in batches of the buffer size, the rest flushed
    assert recovery.active_offsets == {TP0: 2}
    assert recovery.signal_recovery_end.is_set() and not recovery.in_recovery


def test_recovery_loop_is_replaced() -> None:
    from faust.tables.recovery import Recovery

    import app.application  # noqa: F401  (applies the patches)

    assert cast(Any, Recovery)._slurp_changelogs.fun is faust_patches._slurp_changelogs


def test_recovery_offsets_go_through_the_bulk_restore_and_tables_start_at_once() -> None:
    from faust.tables.manager import TableManager
    from faust.tables.recovery import Recovery

    import app.application  # noqa: F401  (applies the patches)

    assert Recovery._build_offsets is faust_patches._build_offsets
    assert TableManager.on_start is faust_patches._start_tables


async def test_the_table_manager_starts_its_tables_then_recovery_without_a_pause() -> None:
    calls: list[str] = []

    class Manager:
        should_stop = False

        async def _update_channels(self) -> None:
            calls.append("channels")

        class recovery:
            @staticmethod
            async def start() -> None:
                calls.append("recovery")

    await asyncio.wait_for(faust_patches._start_tables(Manager()), timeout=0.5)
    assert calls == ["channels", "recovery"]

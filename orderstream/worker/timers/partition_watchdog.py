"""Watchdog for a Faust bug: after a rebalance a worker can stop fetching some or all of its
partitions and never start again (faust-streaming #629), so their records wait forever (or a
standby replica never catches up). When records are waiting on a partition whose fetch position
has not moved for four checks in a row, and nothing holds it back on purpose (records of it
still queued for its agent: a slow agent, not a stalled fetch; a full queue; records of it
fetched and waiting their turn under a backlog; a recovery running), the consumer's flow, the
partition (clearing a stale "buffer full" flag) and the fetcher are resumed.
Offsets are left alone, so no record is skipped or re-read.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from orderstream.observability import metrics
from orderstream.worker.app import app, settings

log = logging.getLogger(__name__)

CHECKS = 4
_still: dict[Any, tuple[int, int]] = {}  # partition -> (position, checks without progress)


def _watched(consumer: Any) -> list[Any]:
    """Input partitions, and the changelog partitions this worker keeps standby replicas of
    (never its active tables' changelogs: it writes those and must not read them back)."""
    standbys = set(app.assignor.assigned_standbys())
    return [
        tp for tp in consumer.assignment() if tp in standbys or not consumer._is_changelog_tp(tp)
    ]


@app.timer(interval=settings.partition_watchdog_s)
async def resume_stalled_partitions() -> None:
    try:
        await _check()
    except Exception:  # an exception in a timer crashes the whole worker: never for a watchdog
        log.exception(
            "partition watchdog check failed; next check in %ss", settings.partition_watchdog_s
        )


async def _check() -> None:
    recovery = cast(Any, app.tables).recovery
    consumer = cast(Any, app.consumer)
    if not recovery.completed.is_set() or recovery.in_recovery or app.rebalancing:
        # Partitions are paused, and the flow stopped, on purpose while a rebalance moves them
        # and the tables recover. (Resumed mid-rebalance, the flow fetched for the old
        # assignment: the chaos test saw a batch of it dropped, ~560 records committed over.)
        _still.clear()
        return
    tps = _watched(consumer)
    ends = await consumer.highwaters(*tps) if tps else {}
    positions, fetched = await _positions(consumer, tps)
    stalled = []
    for tp in tps:
        position = positions.get(tp)
        if position is None or position >= ends.get(tp, 0) or _held_back(consumer, tp, fetched):
            _still.pop(tp, None)  # nothing waiting, or its agent has not caught up yet
            continue
        last, count = _still.get(tp, (-1, 0))
        _still[tp] = (position, count + 1 if position == last else 1)
        if _still[tp][1] >= CHECKS:
            stalled.append((tp, position))
    for tp in set(_still) - set(tps):
        _still.pop(tp)  # no longer ours
    if stalled:
        await _unstick(consumer, stalled, ends)


def _held_back(consumer: Any, tp: Any, fetched: set[Any]) -> bool:
    """Whether `tp` waits for a reason other than a stalled fetch: its agent is busy, or its
    records are fetched and wait their turn (under a backlog, while other partitions' records
    are handed on first). Fetched records Faust does not ask for (not among its active
    partitions) would wait forever: that is a stall."""
    if consumer.stopped_on_purpose(tp):  # the intake's bound, or waiting for a rewind
        return True
    return _busy(consumer, tp) or (tp in fetched and tp in consumer._get_active_partitions())


def _busy(consumer: Any, tp: Any) -> bool:
    """Whether `tp` waits on an agent rather than on the fetcher: records of it are queued for
    its agent, or some agent's queue is full (the fetch loop waits on it, for every partition).
    Resuming such a partition helps nothing, and, seen under load, the resume made Faust skip
    the records it had already fetched. Faust's own "buffer full" flag is not trusted alone: it
    is cleared only when the agent next reads from an emptied queue, which a seek back (that
    empties the queue) can prevent, leaving the partition unfetched for good (seen in the
    benchmark: three order partitions stopped with ~800 records waiting each)."""
    index = cast(Any, app.topics)._tp_index
    if any(chan.queue.qsize() for chan in index.get(tp, ())):
        return True
    return any(chan.queue.full() for channels in index.values() for chan in channels)


async def _positions(consumer: Any, tps: list[Any]) -> tuple[dict[Any, int | None], set[Any]]:
    """Fetch positions of `tps`, and the partitions with fetched records the client holds
    until Faust takes them, in one hop to the consumer's thread (one per partition made the
    check take seconds on a busy worker). Under a backlog a partition can wait there longer
    than the watchdog's patience while others' records are handed on first: it is not stalled
    as long as Faust asks for it (it is among Faust's active partitions)."""
    thread = getattr(consumer, "_thread", None)
    if thread is None:
        return {tp: await consumer.position(tp) for tp in tps}, set()

    async def read() -> tuple[dict[Any, int | None], set[Any]]:
        kafka = thread._ensure_consumer()
        assigned = kafka.assignment()  # a rebalance may have taken some since they were listed
        positions = {tp: await kafka.position(tp) if tp in assigned else None for tp in tps}
        return positions, set(kafka._fetcher._records)

    result: tuple[dict[Any, int | None], set[Any]] = await thread.call_thread(read)
    return result


async def _unstick(consumer: Any, stalled: list[tuple[Any, int]], ends: dict[Any, int]) -> None:
    fetcher = cast(Any, app)._fetcher
    log.warning(
        "partitions not fetched: %s (flow active %s, flow control %s, fetcher stopping %s): "
        "resuming them",
        [f"{tp.topic}/{tp.partition}@{pos}<{ends[tp]}" for tp, pos in stalled],
        consumer.flow_active,
        app.flow_control.is_active(),
        fetcher.should_stop,
    )
    app.flow_control.resume()
    consumer.resume_flow()
    for tp, _ in stalled:
        consumer.on_buffer_drop(tp)  # a stale "buffer full" flag keeps it out of every fetch
    consumer.resume_partitions([tp for tp, _ in stalled])
    for tp, _ in stalled:  # no seek: offsets and commits stay as Faust keeps them
        metrics.partition_resumed()
        _still.pop(tp, None)
    if fetcher.should_stop:
        await fetcher.restart()
    else:
        await fetcher.maybe_start()

"""Watchdog for a Faust bug: after a rebalance an assigned partition can stop being fetched and
never start again (faust-streaming #629), so its records wait forever (or a standby replica
never catches up). A partition with records
waiting whose fetch position has not moved for four checks in a row, and that is not held back
on purpose (its stream's buffer is full), is resumed and re-sought
to where it stands (which restarts its fetching; records are never skipped)."""

from __future__ import annotations

import logging
from typing import Any, cast

from app import metrics
from app.application import app, settings

log = logging.getLogger(__name__)

CHECKS = 4
_still: dict[Any, tuple[int, int]] = {}  # partition -> (position, checks without progress)


@app.timer(interval=settings.partition_watchdog_s)
async def resume_stalled_partitions() -> None:
    recovery = cast(Any, app.tables).recovery
    consumer = cast(Any, app.consumer)
    if not recovery.completed.is_set() or recovery.in_recovery or not consumer.flow_active:
        _still.clear()  # partitions are paused on purpose while tables recover
        return
    # Input partitions, and the changelog partitions this worker keeps standby replicas of
    # (never its active tables' changelogs: it writes those and must not read them back).
    standbys = set(app.assignor.assigned_standbys())
    tps = [
        tp for tp in consumer.assignment() if tp in standbys or not consumer._is_changelog_tp(tp)
    ]
    ends = await consumer.highwaters(*tps) if tps else {}
    for tp in tps:
        position = await consumer.position(tp)
        if position is None or position >= ends.get(tp, 0) or tp in consumer._buffered_partitions:
            _still.pop(tp, None)  # nothing waiting, or paused on purpose: its stream is full
            continue
        last, count = _still.get(tp, (-1, 0))
        count = count + 1 if position == last else 1
        _still[tp] = (position, count)
        if count >= CHECKS:
            log.warning(
                "partition %s stuck at %s with records up to %s: resuming it",
                tp,
                position,
                ends[tp],
            )
            consumer.resume_partitions([tp])
            await consumer.seek(tp, position)
            metrics.partition_resumed()
            _still.pop(tp)
    for tp in set(_still) - set(tps):
        _still.pop(tp)  # no longer ours

"""Records are applied in partition order, whatever order Faust hands them over in.

Every handler recognises a redelivered record by the offset watermark its key's state keeps
(app/domain/common.py): "offset <= watermark means applied". That holds only if each agent
applies a partition's records in offset order. Faust can hand a record over after skipping
some before it (records fetched but never delivered, see app/faust_patches.py); applied then,
it would raise the watermark over the skipped ones, which would later pass for duplicates.

So each agent tracks, per partition, the next offset it expects. A record past it is not
applied (it stays uncommitted: the commit stops at the hole, and the partition watchdog seeks
back, so it comes again, in order). A record before it is a re-read after a seek: the handler
runs and the watermark tells whether it was applied."""

from __future__ import annotations

import logging
from typing import Any, cast

from app import metrics
from app.application import app

log = logging.getLogger(__name__)

_next: dict[tuple[str, Any], int] = {}  # (agent, topic-partition) -> next offset to apply
_told: dict[tuple[str, Any], int] = {}  # the hole last logged per key (one line per hole)


def forget() -> None:
    """After partitions move: the offsets a partition resumes from are the committed ones."""
    _next.clear()
    _told.clear()


async def _on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
    forget()


cast(Any, app.on_partitions_revoked).connect(_on_revoked)


def in_order(agent: str, message: Any) -> bool:
    """Whether `agent` may apply `message` now (False: records before it are missing)."""
    tp, offset = message.tp, message.offset
    key = (agent, tp)
    expected = _next.get(key)
    if expected is None:  # first record since (re)assignment: reading starts at the commit
        committed = cast(Any, app.consumer)._committed_offset.get(tp)
        expected = offset if committed is None else committed
    if offset > expected:
        metrics.record_deferred(agent)
        if _told.get(key) != expected:
            _told[key] = expected
            log.warning(
                "%s: %s/%d@%d arrived before offsets %d..%d: records from there on are "
                "not applied until they come again in order",
                agent,
                tp.topic,
                tp.partition,
                offset,
                expected,
                offset - 1,
            )
        _next[key] = expected
        return False
    if offset == expected:
        _next[key] = offset + 1
    else:  # a re-read after a seek back: the handler's watermark recognises what was applied
        _next.setdefault(key, expected)
    return True

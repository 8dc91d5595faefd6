"""Records are applied in partition order, whatever order Faust hands them over in.

Every handler recognises a redelivered record by the offset watermark its key's state keeps
(app/domain/common.py): "offset <= watermark means applied". That holds only if each agent
applies a partition's records in offset order. Faust can hand a record over after skipping
some before it (records fetched but never delivered, see app/faust_patches.py); applied then,
it would raise the watermark over the skipped ones, which would later pass for duplicates.

So each agent tracks, per partition, the next offset it expects. A record past it is deferred:
not applied and not acknowledged, so the commit cannot pass it, and the partition is marked for
the watchdog, which seeks the consumer back to its committed offsets: the records come again,
in order. A record before the expected offset is a re-read after such a seek: the handler runs
and the watermark tells whether it was applied. The committed offset is the floor of what is
expected (everything before it was handled), which also covers partitions that come back after
another worker had them."""

from __future__ import annotations

import logging
from typing import Any, cast

from app import metrics
from app.application import app
from app.faust_patches import hold_back

log = logging.getLogger(__name__)

_next: dict[tuple[str, Any], int] = {}  # (agent, topic-partition) -> next offset to apply
_told: dict[tuple[str, Any], int] = {}  # the hole last logged per key (one line per hole)
#: Partitions where an agent deferred a record: the watchdog seeks them back.
deferring: set[Any] = set()


def forget(tps: Any = None) -> None:
    """Drop what is known of these partitions (all, by default)."""
    for store in (_next, _told):
        for key in [k for k in store if tps is None or k[1] in tps]:
            del store[key]
    deferring.difference_update(deferring if tps is None else set(tps))


async def _on_revoked(sender: Any, revoked: Any = None, *args: Any, **kwargs: Any) -> None:
    forget(set(revoked or ()))


cast(Any, app.on_partitions_revoked).connect(_on_revoked)


def in_order(agent: str, message: Any) -> bool:
    """Whether `agent` may apply `message` now (False: records before it are missing)."""
    tp, offset = message.tp, message.offset
    key = (agent, tp)
    committed = cast(Any, app.consumer)._committed_offset.get(tp)
    expected = _next.get(key)
    if expected is None:
        expected = offset if committed is None else committed
    elif committed is not None and committed > expected:
        expected = committed  # handled before a seek, or by another worker: all done
    if offset > expected:
        hold_back(app.consumer, message)
        deferring.add(tp)
        metrics.record_deferred(agent)
        if _told.get(key) != expected:
            _told[key] = expected
            log.warning(
                "%s: %s/%d@%d arrived before offsets %d..%d: deferred until they come in order",
                agent,
                tp.topic,
                tp.partition,
                offset,
                expected,
                offset - 1,
            )
        _next[key] = expected
        return False
    _next[key] = max(expected, offset + 1)
    return True

"""Admission control: a worker takes new orders only while it drives fewer than
`saga_max_open` open sagas.

A backlog of orders (a worker starting behind, after an outage, or a preloaded benchmark) is
fetched in large batches, far faster than the replies its sagas wait for: every order in it
would be opened at once, each holding stock, and each product's row would carry thousands of
holds (written whole on every change: the cost of each write grows with the backlog). So when
the open sagas reach the cap, the worker stops fetching the order topic's partitions (Faust's
pause: no offsets move, nothing is skipped, the records wait in Kafka) and resumes once the open
sagas fall below 80% of it. Replies and every other topic keep flowing, so the open sagas
settle. The count is the saga deadline index (tables/orders.py), which is rebuilt after every
rebalance; the watchdog re-evaluates it every check, so a pause never outlives its reason."""

from __future__ import annotations

import logging
from typing import Any, cast

from app import metrics
from app.application import app, settings, topic_name

log = logging.getLogger(__name__)

RESUME_SHARE = 0.8
_paused: set[Any] = set()


def paused() -> set[Any]:
    """Order partitions this worker stopped fetching to keep its open sagas under the cap."""
    return _paused


def update(open_sagas: int, *, reconcile: bool = False) -> None:
    """Pause or resume fetching new orders for this many open sagas: called after each saga
    step (cheap unless the state changes) and by the watchdog with `reconcile`, which also
    follows rebalances (order partitions gained while paused are paused, lost ones dropped)."""
    cap = settings.saga_max_open
    pause = cap > 0 and open_sagas >= (cap * RESUME_SHARE if _paused else cap)
    if pause == bool(_paused) and not reconcile:
        return
    consumer = cast(Any, app.consumer)
    orders = topic_name("orders")
    assigned = {tp for tp in consumer.assignment() if tp.topic == orders}
    wanted = assigned if pause else set()
    gone, new = _paused - wanted, wanted - _paused
    if gone:
        consumer.resume_partitions(gone & assigned)
    if new:
        consumer.pause_partitions(new)
    if not _paused and wanted:
        metrics.admission_paused(True)
        log.info("%d open sagas: new orders wait in Kafka until fewer are open", open_sagas)
    elif _paused and not wanted:
        metrics.admission_paused(False)
    _paused.clear()
    _paused.update(wanted)

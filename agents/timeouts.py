"""Saga deadlines: a timer that turns each passed deadline into a SagaTimedOut event.

Tables change only inside stream processing, so the timer only sends; the saga agent decides.
The deadline index is in memory: it is rebuilt from the orders table after every rebalance
(partitions come and go, and a table is empty until its recovery from the changelog is done).
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from app.application import app, publish, settings
from app.domain.saga import timeout_event
from app.web.health import is_ready
from tables.orders import open_deadlines, scan_open_orders

log = logging.getLogger(__name__)
_state = {"scanned": False}


async def _rescan_after_rebalance(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
    _state["scanned"] = False


cast(Any, app.on_rebalance_complete).connect(_rescan_after_rebalance)


@app.timer(interval=settings.saga_timeout_scan_s)
async def fire_saga_timeouts() -> None:
    try:
        await _fire()
    except Exception:  # an exception in a timer crashes the whole worker; retry next tick
        log.exception("saga deadline check failed; next in %ss", settings.saga_timeout_scan_s)
        _state["scanned"] = False


async def _fire() -> None:
    if not _state["scanned"]:
        if not is_ready():  # a scan before recovery ends would miss the orders still replaying
            return
        open_deadlines.clear()  # revoked partitions' orders belong to another worker now
        scan_open_orders()
        _state["scanned"] = True
    now = time.time()
    for order_id, (step, deadline) in list(open_deadlines.items()):
        if deadline <= now:
            await publish(timeout_event(order_id, step, deadline))
            open_deadlines[order_id] = (step, now + settings.saga_timeout_s)

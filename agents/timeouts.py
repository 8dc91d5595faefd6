"""Saga deadlines: a timer that turns each passed deadline into a SagaTimedOut event.

Tables change only inside stream processing, so the timer only sends; the saga agent decides.
"""

from __future__ import annotations

import time

from app.application import app, publish, settings
from app.domain.saga import timeout_event
from tables.orders import open_deadlines, scan_open_orders

_state = {"scanned": False}


@app.timer(interval=settings.saga_timeout_scan_s)
async def fire_saga_timeouts() -> None:
    if not _state["scanned"]:  # after a (re)start, orders left open by the last run
        scan_open_orders()
        _state["scanned"] = True
    now = time.time()
    for order_id, (step, deadline) in list(open_deadlines.items()):
        if deadline <= now:
            await publish(timeout_event(order_id, step, deadline))
            open_deadlines[order_id] = (step, now + settings.saga_timeout_s)

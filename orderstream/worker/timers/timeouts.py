"""Saga deadlines: a timer that turns each passed deadline into a SagaTimedOut event.

Tables change only inside stream processing, so the timer only sends; the saga agent decides.
The deadlines are the worker's open orders' (orderstream/worker/open_orders.py), rebuilt from the
orders table after every rebalance.

A passed deadline whose step waits on a backlog being worked through
(orderstream.domain.saga.held_steps, from the group's offsets on the broker) is restarted, not
fired: under a backlog of 100,000 orders, firing re-sent the commands of every order still queued
and doubled the work.
"""

from __future__ import annotations

import logging
import time

from aiokafka import TopicPartition

from orderstream.contracts.topics import input_roles, registry
from orderstream.domain.saga import STEP_TOPICS, Backlog, held_steps, timeout_event
from orderstream.observability import metrics
from orderstream.worker.app import app, publish, settings
from orderstream.worker.group_offsets import group_offsets
from orderstream.worker.open_orders import open_orders
from orderstream.worker.readiness import tables_ready
from orderstream.worker.tables.orders import all_orders

log = logging.getLogger(__name__)


@app.timer(interval=settings.saga_timeout_scan_s)
async def fire_saga_timeouts() -> None:
    try:
        await _fire()
    except Exception:  # an exception in a timer crashes the whole worker; retry next tick
        log.exception("saga deadline check failed; next in %ss", settings.saga_timeout_scan_s)
        open_orders.stale = True


async def _fire() -> None:
    if open_orders.stale:
        if not tables_ready():  # a scan before recovery ends would miss the orders still replaying
            return
        open_orders.rebuild(all_orders())
    now = time.time()
    due = open_orders.due(now)
    held = await _held_steps() if due else frozenset()
    for order_id, step, deadline in due:
        if step in held:
            metrics.saga_deadline_held(step)
        else:
            await publish(timeout_event(order_id, step, deadline))
        open_orders.rearm(order_id, step, now + settings.saga_timeout_s)


async def _held_steps() -> frozenset[str]:
    specs = registry(settings)
    inputs = input_roles(settings)  # inline payment: the payment topics are nobody's input
    roles = {
        specs[r].name: r for step_roles in STEP_TOPICS.values() for r in step_roles if r in inputs
    }
    tps = [TopicPartition(name, p) for name in roles for p in range(specs[roles[name]].partitions)]
    try:
        progress = await group_offsets.progress(tps)
    except Exception as exc:  # the broker did not answer: deadlines fire as they are
        log.info("backlog of the saga's topics unknown (%r): deadlines fire", exc)
        return frozenset()
    now: dict[str, Backlog] = {}
    for (topic, _), p in progress.items():
        consumed, waiting = now.get(roles[topic], Backlog(0, 0))
        now[roles[topic]] = Backlog(consumed + p.committed, waiting + p.lag)
    held = held_steps(open_orders.backlogs, now, settings.saga_backlog_limit)
    open_orders.backlogs = now
    if held:
        log.info("saga deadlines restarted for %s: backlog %s", sorted(held), dict(now))
    return held

"""Saga agent: drives each order from OrderPlaced to exactly one terminal state.

It consumes the replies and deadlines keyed by orderId; new orders come in through the order
intake agent (agents/order_intake.py), which runs the same step (`handle`) in the same worker:
the topics are co-partitioned, so one worker owns an order across all of them. An order's
replies exist only after its OrderPlaced was handled, so two agents keep each order's sequence.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from app import metrics
from app.application import app, publish, settings, topic
from app.deadletter import guarded
from app.domain import saga
from app.domain.common import RuleViolation, StateBehind, already_applied, stamp
from app.events import Event, SagaInput, decode
from app.repartition import rehomed
from app.topics import accepted_types
from app.tracing import traced
from tables.orders import get_order, put_order

ROLES = ("inventory_events", "payment_events", "saga_timeouts")
ACCEPT = accepted_types("orders", *ROLES)


@app.agent(topic(*ROLES), name="saga")
async def saga_agent(stream: Any) -> None:
    async for event in stream.events():
        with traced(event, "saga"):
            await guarded("saga", event, partial(handle, event))


async def handle(event: Any) -> None:
    """One saga step for any of the saga's input records (no await before the state is saved:
    the two agents never interleave inside one order's step)."""
    msg = event.message
    ev: SagaInput = decode(event.value, ACCEPT)  # type: ignore[assignment]
    if await rehomed(event, ev):  # placed by another partitioner: applied where it belongs
        return
    state = get_order(ev.data.orderId)
    if state is not None and already_applied(state.applied, msg.topic, msg.offset):
        # Redelivered after a crash: the state is ahead, but what it sent and its changelog
        # write may have been lost (not committed over): both again.
        put_order(state)
        emit: list[Event] = saga.pending_commands(state, ev.eventId)
        metrics.duplicate_dropped("saga")
    else:
        decision = saga.decide(state, ev, time.time(), settings.saga_timeout_s)
        metrics.saga_decided(state, ev, decision)
        if decision.ahead:  # the state it answers is not rebuilt yet: wait for it
            raise StateBehind(str(decision.out_of_order))
        if decision.out_of_order:  # parked as a dead letter: replayable once it makes sense
            raise RuleViolation("out_of_order", decision.out_of_order)
        if decision.state is not None:
            put_order(stamp(decision.state, msg.topic, msg.offset))
        emit = decision.emit
    for out in emit:
        await publish(out)

"""Saga agent: drives each order from OrderPlaced to exactly one terminal state.

It consumes the replies and deadlines keyed by orderId; new orders come in through the order
intake agent (orderstream/worker/agents/order_intake.py), which runs the same step (`handle`) in the
same worker: the topics are co-partitioned, so one worker owns an order across all of them. An
order's replies exist only after its OrderPlaced was handled, so two agents keep each order's
sequence.

With inline payment (`payment_mode="inline"`, opt-in) the step that reserves an order's last
line also charges the gateway and settles the order on the answer: the payment event goes out
for other consumers, and no payment request or reply crosses Kafka. The only await inside a
step is that charge; the intake agent can meet the order meanwhile only with a repeated
OrderPlaced, which changes nothing.

An outcome goes to order-status (by order, for every consumer) and into the customer's
history, in this step's partition (orderstream/worker/customer_history.py), both marked with
the record whose step announced it: the history's watermark per source partition drops what
the saga announces again (`projections.Origin`), and `orderstream replay` rebuilds the
histories from order-status the same way.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from orderstream.contracts.events import (
    CommitStock,
    Event,
    PaymentRequested,
    SagaInput,
    StatusEvent,
    decode,
)
from orderstream.contracts.topics import accepted_types, input_roles
from orderstream.domain import saga
from orderstream.domain.common import Decision, RuleViolation, StateBehind
from orderstream.domain.payment import result_event
from orderstream.domain.projections import ORIGIN_HEADER, SOURCES, Origin
from orderstream.domain.saga import OrderState
from orderstream.observability import metrics, tracing
from orderstream.observability.tracing import traced
from orderstream.worker import commit_batches, customer_history, payment_service
from orderstream.worker.app import app, publish, settings, topic, topic_name
from orderstream.worker.apply import apply_once
from orderstream.worker.dead_letters import guarded
from orderstream.worker.repartition import rehomed
from orderstream.worker.tables.orders import get_order, put_order

INLINE = settings.payment_mode == "inline"
INPUTS = input_roles(settings)
ROLES = tuple(r for r in ("inventory_events", "payment_events", "saga_timeouts") if r in INPUTS)
ACCEPT = accepted_types("orders", *ROLES)
# topic -> origin code ("x": a channel of no registry topic, as in agent tests)
SOURCE = {topic_name(role): code for role, code in SOURCES.items()}


@app.agent(topic(*ROLES), name="saga")
async def saga_agent(stream: Any) -> None:
    async for event in stream.events():
        with traced(event, "saga"):
            await guarded("saga", event, partial(handle, event))


async def handle(event: Any) -> None:
    """One saga step for any of the saga's input records (no await before the state is saved:
    the two agents never interleave inside one order's step)."""
    ev: SagaInput = decode(event.value, ACCEPT)  # type: ignore[assignment]
    if await rehomed(event, ev):  # placed by another partitioner: applied where it belongs
        return
    emit = await apply_once(
        "saga",
        event,
        ev.data.orderId,
        get=get_order,
        put=put_order,
        decide=partial(_decide, ev),
        redelivered=partial(_redelivered, ev),
    )
    for out in emit:
        if isinstance(out, CommitStock) and commit_batches.ENABLED:
            commit_batches.add(out)  # sent with the next offset commit, batched
            continue
        if not isinstance(out, StatusEvent):
            await publish(out)
            continue
        # an outcome, marked with the step's record, and into the customer's history
        msg = event.message
        origin = Origin(
            source=SOURCE.get(msg.topic, "x"), partition=msg.partition, offset=msg.offset
        )
        await publish(out, {ORIGIN_HEADER: origin.header()})
        with tracing.internal(f"customer-orders {out.eventType}", out.data.orderId):
            customer_history.record(out, origin, msg.partition)


async def _decide(ev: SagaInput, state: OrderState | None) -> Decision[OrderState]:
    decision = saga.decide(state, ev, time.time(), settings.saga_timeout_s)
    metrics.saga_decided(state, ev, decision)
    if decision.ahead:  # the state it answers is not rebuilt yet: wait for it
        raise StateBehind(str(decision.out_of_order))
    if decision.out_of_order:  # parked as a dead letter: replayable once it makes sense
        raise RuleViolation("out_of_order", decision.out_of_order)
    if decision.state is None:
        return decision
    return await _pay_inline(decision.state, decision.emit)


async def _redelivered(ev: SagaInput, state: OrderState) -> Decision[OrderState]:
    """Redelivered after a crash: the state is ahead, but what it sent may have been lost."""
    return await _pay_inline(state, saga.pending_commands(state, ev.eventId))


async def _pay_inline(state: OrderState, emit: list[Event]) -> Decision[OrderState]:
    """With inline payment, a payment request among `emit` is not sent: the gateway is charged
    here and the order settles on the answer (the state and the events to send then)."""
    req = next((e for e in emit if isinstance(e, PaymentRequested)), None)
    if req is None or not INLINE:
        return Decision(state, emit)
    with tracing.internal("payment PaymentRequested", req.data.orderId):
        rec = await payment_service.charge(req, settings)
    metrics.payment_settled(rec.status)
    decision = saga.charged(state, rec, time.time())
    metrics.saga_decided(state, result_event(rec), decision)
    rest = [e for e in emit if e is not req]
    return Decision(decision.state or state, [*rest, *decision.emit])

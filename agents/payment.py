"""Payment agent: charge each order at most once through the gateway, retrying transient errors."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from app import metrics
from app.application import app, publish, settings, topic
from app.deadletter import guarded
from app.domain.common import stamp
from app.domain.payment import backoff_s, record, result_event
from app.events import PaymentRequested, decode
from app.gateway import (
    Charge,
    GatewayLedger,
    PaymentGateway,
    SimulatedGateway,
    TransientGatewayError,
)
from app.repartition import rehomed
from app.tracing import traced
from tables.payments import get_payment, put_payment

gateway: PaymentGateway = SimulatedGateway(
    limit_per_order=settings.payment_limit_per_order,
    declined_customers=frozenset(filter(None, settings.payment_declined_customers.split(","))),
    transient_failure_rate=settings.payment_transient_failure_rate,
    ledger=GatewayLedger(settings.gateway_ledger) if settings.gateway_ledger else None,
)


@app.agent(topic("payment_requests"), name="payment")
async def payment_agent(stream: Any) -> None:
    async for event in stream.events():
        with traced(event, "payment"):
            await guarded("payment", event, partial(_handle, event))


async def _handle(event: Any) -> None:
    msg = event.message
    req: PaymentRequested = decode(event.value, ("PaymentRequested",))  # type: ignore[assignment]
    if await rehomed(event, req):  # placed by another partitioner: applied where it belongs
        return
    done = get_payment(req.data.orderId)
    if done is None:  # never charged: charge now (the idempotency key guards the gateway too)
        charge, attempts, last_error = await _charge(req)
        done = stamp(record(req, charge, attempts, last_error), msg.topic, msg.offset)
        put_payment(done)
        metrics.payment_settled(done.status)
    else:
        put_payment(done)  # its changelog write may have been lost (not committed over)
        metrics.duplicate_dropped("payment")
    await publish(result_event(done))  # a repeat request gets the same answer, no new charge


async def _charge(req: PaymentRequested) -> tuple[Charge | None, int, str | None]:
    last_error: str | None = None
    for attempt in range(1, settings.payment_max_attempts + 1):
        try:
            charge = await gateway.charge(
                order_id=req.data.orderId,
                customer_id=req.data.customerId,
                amount=req.data.amount,
                idempotency_key=req.data.orderId,
                attempt=attempt,
            )
            return charge, attempt, None
        except TransientGatewayError as exc:
            last_error = str(exc)
            if attempt < settings.payment_max_attempts:
                await asyncio.sleep(backoff_s(settings.payment_retry_backoff_s, attempt))
    return None, settings.payment_max_attempts, last_error

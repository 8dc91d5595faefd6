"""Payment agent (`payment_mode="agent"`): charge each order at most once through the gateway,
from the saga's payment requests. With inline payment (the default) the saga charges in its own
step and this agent does not run."""

from __future__ import annotations

from functools import partial
from typing import Any

from orderstream.contracts.events import PaymentRequested, decode
from orderstream.domain.common import Decision
from orderstream.domain.payment import PaymentRecord, result_event
from orderstream.observability import metrics
from orderstream.observability.tracing import traced
from orderstream.worker import payment_service
from orderstream.worker.app import app, publish, settings, topic
from orderstream.worker.apply import apply_once
from orderstream.worker.dead_letters import guarded
from orderstream.worker.repartition import rehomed
from orderstream.worker.tables.payments import get_payment, put_payment


@app.agent(topic("payment_requests"), name="payment")
async def payment_agent(stream: Any) -> None:
    async for event in stream.events():
        with traced(event, "payment"):
            await guarded("payment", event, partial(_handle, event))


async def _handle(event: Any) -> None:
    req: PaymentRequested = decode(event.value, ("PaymentRequested",))  # type: ignore[assignment]
    if await rehomed(event, req):  # placed by another partitioner: applied where it belongs
        return
    emit = await apply_once(
        "payment",
        event,
        req.data.orderId,
        get=get_payment,
        put=put_payment,
        decide=partial(_charge, req),
        redelivered=_answer_again,
        once_per_key=True,  # a repeat request (any offset) gets the same answer, no new charge
    )
    for out in emit:
        await publish(out)


async def _charge(req: PaymentRequested, _: PaymentRecord | None) -> Decision[PaymentRecord]:
    """Never charged (once per key: no record): charge now (the idempotency key guards the
    gateway too)."""
    rec = await payment_service.charge(req, settings)
    metrics.payment_settled(rec.status)
    return Decision(rec, [result_event(rec)])


async def _answer_again(done: PaymentRecord) -> Decision[PaymentRecord]:
    return Decision(emit=[result_event(done)])

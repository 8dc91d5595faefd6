"""Payment agent (`payment_mode="agent"`): charge each order at most once through the gateway,
from the saga's payment requests. With inline payment (the default) the saga charges in its own
step and this agent does not run."""

from __future__ import annotations

from functools import partial
from typing import Any

from orderstream.contracts.events import PaymentRequested, decode
from orderstream.domain.common import stamp
from orderstream.domain.payment import result_event
from orderstream.observability import metrics
from orderstream.observability.tracing import traced
from orderstream.worker import payment_service
from orderstream.worker.app import app, publish, settings, topic
from orderstream.worker.dead_letters import guarded
from orderstream.worker.repartition import rehomed
from orderstream.worker.tables.payments import get_payment, put_payment


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
        done = stamp(await payment_service.charge(req, settings), msg.topic, msg.offset)
        put_payment(done)
        metrics.payment_settled(done.status)
    else:
        put_payment(done)  # its changelog write may have been lost (not committed over)
        metrics.duplicate_dropped("payment")
    await publish(result_event(done))  # a repeat request gets the same answer, no new charge

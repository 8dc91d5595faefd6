"""Charging an order through the payment gateway: at most one charge per order (the order id is
the gateway's idempotency key), transient errors retried with backoff. Used by the saga, which
charges in its own step (`payment_mode="inline"`, the default), and by the payment agent
(`payment_mode="agent"`), for a gateway slow enough that it must not hold up a saga
partition."""

from __future__ import annotations

import asyncio
from functools import cache

from orderstream.contracts.events import PaymentRequested
from orderstream.domain.payment import Charge, PaymentRecord, backoff_s, record
from orderstream.settings import Settings, get_settings
from orderstream.worker.gateway import (
    GatewayLedger,
    PaymentGateway,
    SimulatedGateway,
    TransientGatewayError,
)


@cache
def gateway() -> PaymentGateway:
    """The gateway of this process, built on first use from the settings."""
    s = get_settings()
    return SimulatedGateway(
        limit_per_order=s.payment_limit_per_order,
        declined_customers=frozenset(filter(None, s.payment_declined_customers.split(","))),
        transient_failure_rate=s.payment_transient_failure_rate,
        ledger=GatewayLedger(s.gateway_ledger) if s.gateway_ledger else None,
    )


async def charge(req: PaymentRequested, settings: Settings | None = None) -> PaymentRecord:
    """Charge the order `req` asks for and return the outcome. Safe to call again for the same
    order (after a crash, a redelivery): the gateway answers a repeat key with the first charge."""
    s = settings or get_settings()
    result, attempts, last_error = await _attempts(gateway(), req, s)
    return record(req, result, attempts, last_error)


async def _attempts(
    gw: PaymentGateway, req: PaymentRequested, s: Settings
) -> tuple[Charge | None, int, str | None]:
    last_error: str | None = None
    for attempt in range(1, s.payment_max_attempts + 1):
        try:
            result = await gw.charge(
                order_id=req.data.orderId,
                customer_id=req.data.customerId,
                amount=req.data.amount,
                idempotency_key=req.data.orderId,
                attempt=attempt,
            )
            return result, attempt, None
        except TransientGatewayError as exc:
            last_error = str(exc)
            if attempt < s.payment_max_attempts:
                await asyncio.sleep(backoff_s(s.payment_retry_backoff_s, attempt))
    return None, s.payment_max_attempts, last_error

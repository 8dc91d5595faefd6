"""Payment decisions: at most one charge per order, and the same answer to every repeat request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orderstream.contracts.events import (
    PaymentEvent,
    PaymentFailed,
    PaymentRequested,
    PaymentResult,
    PaymentSucceeded,
    event_id,
    utcnow,
)
from orderstream.domain.state import State


@dataclass(frozen=True)
class Charge:
    """What the payment gateway answered to one charge call."""

    approved: bool
    charge_id: str | None = None
    reason: str | None = None


class PaymentRecord(State, frozen=True, kw_only=True):
    orderId: str
    customerId: str
    amount: float
    status: Literal["SUCCEEDED", "FAILED"]
    attempts: int
    chargeId: str | None = None
    reason: str | None = None
    requestEventId: str
    applied: dict[str, int] = {}


def record(
    req: PaymentRequested, charge: Charge | None, attempts: int, transient_reason: str | None = None
) -> PaymentRecord:
    """The outcome of charging `req`; `charge` is None when every attempt failed transiently."""
    d = req.data
    status: Literal["SUCCEEDED", "FAILED"] = "SUCCEEDED" if charge and charge.approved else "FAILED"
    reason = charge.reason if charge else f"gateway_unavailable: {transient_reason}"
    return PaymentRecord(
        orderId=d.orderId,
        customerId=d.customerId,
        amount=d.amount,
        status=status,
        attempts=attempts,
        chargeId=charge.charge_id if charge else None,
        reason=reason,
        requestEventId=req.eventId,
    )


def result_event(rec: PaymentRecord) -> PaymentEvent:
    """The event that reports the record; the same record always gives the same event id."""
    data = PaymentResult(
        orderId=rec.orderId,
        amount=rec.amount,
        attempts=rec.attempts,
        chargeId=rec.chargeId,
        reason=rec.reason,
    )
    if rec.status == "SUCCEEDED":
        return PaymentSucceeded(
            eventId=event_id("PaymentSucceeded", rec.orderId),
            timestamp=utcnow(),
            causationId=rec.requestEventId,
            data=data,
        )
    return PaymentFailed(
        eventId=event_id("PaymentFailed", rec.orderId),
        timestamp=utcnow(),
        causationId=rec.requestEventId,
        data=data,
    )


def backoff_s(base_s: float, attempt: int) -> float:
    """Exponential backoff before retry number `attempt` (1-based), capped at 2 s."""
    return float(min(base_s * 2 ** (attempt - 1), 2.0))

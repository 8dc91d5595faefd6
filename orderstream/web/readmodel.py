"""What the HTTP views show of the tables: orders, their history and stock, as JSON-ready dicts."""

from __future__ import annotations

from typing import Any

from orderstream.domain.inventory import ProductStock
from orderstream.domain.payment import PaymentRecord
from orderstream.domain.saga import OrderState, outcome_event

# What a reserved line's hold became, by order status.
_HOLD_STATE = {"CONFIRMED": "sold", "REJECTED": "released", "CANCELLED": "released"}


def order_view(order: OrderState, payment: PaymentRecord | None) -> dict[str, Any]:
    """GET /orders/{id}: status, items, holds, payment and timestamps."""
    hold_state = _HOLD_STATE.get(order.status, "held")
    return {
        "orderId": order.orderId,
        "customerId": order.customerId,
        "status": order.status,
        "reason": order.reason,
        "totalAmount": order.totalAmount,
        "items": [
            {
                "productId": ln.productId,
                "quantity": ln.quantity,
                "price": ln.price,
                "reservation": ln.status,
            }
            for ln in order.lines
        ],
        "holds": [
            {"productId": ln.productId, "quantity": ln.quantity, "state": hold_state}
            for ln in order.lines
            if ln.status == "RESERVED"
        ],
        "payment": None
        if payment is None
        else {
            "status": payment.status,
            "amount": payment.amount,
            "attempts": payment.attempts,
            "chargeId": payment.chargeId,
            "reason": payment.reason,
        },
        "placedAt": order.placedAt.isoformat(),
        "updatedAt": order.updatedAt.isoformat(),
    }


def order_history(order: OrderState) -> list[dict[str, Any]]:
    """GET /orders/{id}/events: the events the saga applied, in order, then its outcome."""
    events = [
        {"eventType": h.eventType, "eventId": h.eventId, "at": h.at.isoformat()}
        for h in order.history
    ]
    if order.terminal:
        outcome = outcome_event(order, cause=order.placedEventId)
        events.append(
            {
                "eventType": outcome.eventType,
                "eventId": outcome.eventId,
                "at": order.updatedAt.isoformat(),
            }
        )
    return events


def order_summary(order: OrderState) -> dict[str, Any]:
    """A row of the recent-orders list."""
    return {
        "orderId": order.orderId,
        "customerId": order.customerId,
        "status": order.status,
        "reason": order.reason,
        "totalAmount": order.totalAmount,
        "items": sum(ln.quantity for ln in order.lines),
        "placedAt": order.placedAt.isoformat(),
        "updatedAt": order.updatedAt.isoformat(),
    }


def stock_view(stock: ProductStock) -> dict[str, Any]:
    """GET /inventory/{sku}: available, held, sold (and what was ever put on the shelf)."""
    return {
        "productId": stock.productId,
        "available": stock.available,
        "held": stock.held,
        "sold": stock.sold,
        "restocked": stock.restocked,
        "openHolds": len(stock.holds),
    }

"""What the views show of an order and a product: holds by status, payment, history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderstream.contracts.events import OrderItem, OrderPlaced, OrderPlacedData, event_id
from orderstream.domain import saga
from orderstream.domain.inventory import ProductStock
from orderstream.domain.payment import PaymentRecord
from orderstream.domain.state import replace
from orderstream.web.readmodel import order_history, order_summary, order_view, stock_view

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _order(status: str) -> saga.OrderState:
    data = OrderPlacedData(
        orderId="o-1",
        customerId="C1",
        items=[
            OrderItem(productId="A", quantity=2, price=5.0),
            OrderItem(productId="B", quantity=1),
        ],
        totalAmount=10.0,
    )
    placed = saga.place(None, OrderPlaced(eventId="e-1", timestamp=T0, data=data), 0.0, 30.0)
    assert placed.state is not None
    lines = [replace(ln, status="RESERVED") for ln in placed.state.lines[:1]]
    return replace(placed.state, status=status, lines=[*lines, *placed.state.lines[1:]])


@pytest.mark.parametrize(
    ("status", "hold"),
    [
        ("RESERVING", "held"),
        ("PAYING", "held"),
        ("CONFIRMED", "sold"),
        ("REJECTED", "released"),
        ("CANCELLED", "released"),
    ],
)
def test_reserved_lines_show_what_their_hold_became(status: str, hold: str) -> None:
    view = order_view(_order(status), None)
    assert view["status"] == status
    assert view["holds"] == [{"productId": "A", "quantity": 2, "state": hold}]
    assert [i["reservation"] for i in view["items"]] == ["RESERVED", "PENDING"]
    assert view["payment"] is None
    assert view["placedAt"] == T0.isoformat()


def test_the_payment_record_is_part_of_the_order() -> None:
    record = PaymentRecord(
        orderId="o-1",
        customerId="C1",
        amount=10.0,
        status="SUCCEEDED",
        attempts=2,
        chargeId="ch-1",
        requestEventId="r-1",
    )
    payment = order_view(_order("CONFIRMED"), record)["payment"]
    assert payment == {
        "status": "SUCCEEDED",
        "amount": 10.0,
        "attempts": 2,
        "chargeId": "ch-1",
        "reason": None,
    }


def test_history_ends_with_the_outcome_once_settled() -> None:
    assert [e["eventType"] for e in order_history(_order("PAYING"))] == ["OrderPlaced"]
    settled = order_history(_order("CONFIRMED"))
    assert [e["eventType"] for e in settled] == ["OrderPlaced", "OrderConfirmed"]
    # the outcome's id is the one the saga published (deterministic per order)
    assert settled[-1]["eventId"] == event_id("OrderConfirmed", "o-1")


def test_summary_and_stock_views() -> None:
    assert order_summary(_order("PAYING"))["items"] == 3
    stock = ProductStock(productId="A", available=3, held=2, sold=5, restocked=10, holds={"o": 2})
    assert stock_view(stock) == {
        "productId": "A",
        "available": 3,
        "held": 2,
        "sold": 5,
        "restocked": 10,
        "openHolds": 1,
    }

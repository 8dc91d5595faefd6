"""The saga agent with inline payment (`ORDERSTREAM_PAYMENT_MODE=inline`), in Faust's
test_context: the step that reserves an order's last line charges the gateway and settles the
order on the answer; a redelivered record charges no one again and sends the same events
again."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import orderstream.worker.agents.saga as saga_module
from orderstream.contracts.events import (
    CommitStock,
    Event,
    OrderCancelled,
    OrderConfirmed,
    OrderItem,
    OrderPlaced,
    OrderPlacedData,
    PaymentFailed,
    PaymentRequested,
    PaymentSucceeded,
    ReleaseStock,
    ReserveStock,
    StockReserved,
    StockResult,
    encode,
    utcnow,
)
from orderstream.domain.payment import Charge
from orderstream.domain.projections import Origin, history_key
from orderstream.domain.saga import timeout_event
from orderstream.worker import payment_service
from orderstream.worker.agents.saga import saga_agent
from orderstream.worker.tables.customer_orders import get_history
from orderstream.worker.tables.orders import get_order
from tests.unit.worker.conftest import Captured, capture_publish

pytestmark = pytest.mark.asyncio


@dataclass
class LedgerGateway:
    """Approves up to `limit` and writes down every call (the checker's side of the charge)."""

    limit: float = 100.0
    calls: list[str] = field(default_factory=list)

    async def charge(
        self, *, order_id: str, customer_id: str, amount: float, idempotency_key: str, attempt: int
    ) -> Charge:
        self.calls.append(idempotency_key)
        if amount > self.limit:
            return Charge(False, reason="amount_over_limit")
        return Charge(True, charge_id=f"ch-{idempotency_key}")


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> LedgerGateway:
    gw = LedgerGateway()
    monkeypatch.setattr(payment_service, "gateway", lambda: gw)
    return gw


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Captured:
    monkeypatch.setattr(saga_module, "INLINE", True)
    return capture_publish(monkeypatch, saga_module)


def placed(order: str, amount: float, *skus: str) -> bytes:
    items = [OrderItem(productId=s, quantity=1, price=amount / len(skus)) for s in skus]
    data = OrderPlacedData(orderId=order, customerId="c-1", items=items, totalAmount=amount)
    return encode(OrderPlaced(eventId=f"placed-{order}", timestamp=utcnow(), data=data))


def reserved(order: str, sku: str) -> bytes:
    data = StockResult(orderId=order, productId=sku, quantity=1)
    return encode(StockReserved(eventId=f"res-{order}-{sku}", timestamp=utcnow(), data=data))


def kinds(events: list[Event]) -> list[str]:
    return [e.eventType for e in events]


async def test_the_last_reservation_charges_once_and_confirms(
    gateway: LedgerGateway, sent: list[Event]
) -> None:
    async with saga_agent.test_context() as agent:
        # Given an order of two lines, both reserved
        await agent.put(placed("si-1", 40.0, "A", "B"), key=b"si-1")
        await agent.put(reserved("si-1", "A"), key=b"si-1")
        assert gateway.calls == []  # one line still pending: no charge yet
        await agent.put(reserved("si-1", "B"), key=b"si-1")

        # Then the gateway was called once, the order is confirmed with its charge kept, and
        # no payment request went out: the payment result does, for other consumers
        assert gateway.calls == ["si-1"]
        state = get_order("si-1")
        assert state is not None and state.status == "CONFIRMED"
        assert state.payment is not None and state.payment.chargeId == "ch-si-1"
        assert state.chargeId == "ch-si-1"
        assert not [e for e in sent if isinstance(e, PaymentRequested)]
        assert kinds(sent) == [
            "ReserveStock",
            "ReserveStock",
            "PaymentSucceeded",
            "CommitStock",
            "CommitStock",
            "OrderConfirmed",
        ]
        # And the outcome went out marked with the step's record, and into the customer's
        # history part of the step's partition
        first = Origin.from_headers(sent.headers[-1])
        assert (first.partition, first.offset) == (0, 2)
        assert [h for h in sent.headers[:-1] if h] == []  # only outcomes are marked
        history = get_history(history_key("c-1", 0))
        assert history is not None and history.lists("si-1")
        placed_before = history.placed

        # When the last reservation is delivered again (a crash before the offset commit)
        sent.clear()
        agent.sent_offset = 2
        await agent.put(reserved("si-1", "B"), key=b"si-1")

        # Then nobody is charged again, and the step's events go out again (their sends may
        # have been lost), the same ids as the first time, the outcome with the same origin
        # (the history drops it: orderstream/domain/projections.py)
        assert gateway.calls == ["si-1"]
        again = [e for e in sent if isinstance(e, PaymentSucceeded | CommitStock | OrderConfirmed)]
        assert len(again) == 4 == len(sent)
        assert Origin.from_headers(sent.headers[-1]) == first
        # and the customer's history counts the order once
        again_history = get_history(history_key("c-1", 0))
        assert again_history is not None and again_history.placed == placed_before


async def test_a_declined_charge_cancels_and_releases(
    gateway: LedgerGateway, sent: list[Event]
) -> None:
    async with saga_agent.test_context() as agent:
        await agent.put(placed("si-2", 500.0, "A"), key=b"si-2")
        await agent.put(reserved("si-2", "A"), key=b"si-2")

        state = get_order("si-2")
        assert state is not None and state.status == "CANCELLED"
        assert state.payment is not None and state.payment.status == "FAILED"
        assert gateway.calls == ["si-2"]
        assert [type(e) for e in sent] == [
            ReserveStock,
            PaymentFailed,
            ReleaseStock,
            OrderCancelled,
        ]


async def test_an_order_left_waiting_for_the_payment_agent_is_charged_at_its_deadline(
    gateway: LedgerGateway, sent: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker switched from agent to inline payment: an order whose payment request went to
    the payment agent (nobody reads it any more) is charged by the saga when its deadline
    re-drives it, and settles."""
    async with saga_agent.test_context() as agent:
        # Given an order reserved by an agent-mode saga: PAYING, its request sent
        monkeypatch.setattr(saga_module, "INLINE", False)
        await agent.put(placed("si-3", 40.0, "A"), key=b"si-3")
        await agent.put(reserved("si-3", "A"), key=b"si-3")
        state = get_order("si-3")
        assert state is not None and state.status == "PAYING" and gateway.calls == []
        assert kinds(sent) == ["ReserveStock", "PaymentRequested"]
        # When the worker runs inline and the order's deadline passes
        sent.clear()
        monkeypatch.setattr(saga_module, "INLINE", True)
        later = state.deadline + 1.0
        monkeypatch.setattr(saga_module.time, "time", lambda: later)
        await agent.put(encode(timeout_event("si-3", "PAYING", state.deadline)), key=b"si-3")
        # Then the saga charged the gateway once and the order is confirmed
        assert gateway.calls == ["si-3"]
        settled = get_order("si-3")
        assert settled is not None and settled.status == "CONFIRMED"
        assert kinds(sent) == ["PaymentSucceeded", "CommitStock", "OrderConfirmed"]

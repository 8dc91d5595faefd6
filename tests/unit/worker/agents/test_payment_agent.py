"""The payment agent (`payment_mode="agent"`) with Faust's test_context: a request is charged once
and answered; a redelivered request (same offset) or the saga's request again (a new offset)
charges no one again and gets the same answer; a declined charge is answered PaymentFailed;
transient gateway errors are retried up to payment_max_attempts, then answered PaymentFailed; a
request placed by another partitioner is charged only on its order's partition. Every gateway
call is written down, repeats included."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

import orderstream.worker.agents.payment as payment_module
import orderstream.worker.app as application
from orderstream.contracts.events import (
    Event,
    PaymentFailed,
    PaymentRequestData,
    PaymentRequested,
    PaymentSucceeded,
    encode,
    event_id,
    utcnow,
)
from orderstream.contracts.topics import registry
from orderstream.domain.payment import Charge
from orderstream.kafka.partitioner import key_hash
from orderstream.worker import payment_service
from orderstream.worker.agents.payment import payment_agent
from orderstream.worker.app import settings
from orderstream.worker.gateway import TransientGatewayError
from orderstream.worker.tables.payments import get_payment, payments_table

pytestmark = pytest.mark.asyncio

REQUESTS = registry(settings)["payment_requests"]


@dataclass
class LedgerGateway:
    """Approves up to `limit`, fails the first `transient` calls transiently, answers a repeat
    idempotency key with its first answer (as a real gateway does), and writes down every call
    as (idempotency key, attempt)."""

    limit: float = 100.0
    transient: int = 0
    calls: list[tuple[str, int]] = field(default_factory=list)
    answered: dict[str, Charge] = field(default_factory=dict)

    async def charge(
        self, *, order_id: str, customer_id: str, amount: float, idempotency_key: str, attempt: int
    ) -> Charge:
        self.calls.append((idempotency_key, attempt))
        if len(self.calls) <= self.transient:
            raise TransientGatewayError(f"gateway timeout (attempt {attempt})")
        if idempotency_key not in self.answered:
            self.answered[idempotency_key] = (
                Charge(False, reason="amount_over_limit")
                if amount > self.limit
                else Charge(True, charge_id=f"ch-{idempotency_key}")
            )
        return self.answered[idempotency_key]


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> LedgerGateway:
    gw = LedgerGateway()
    monkeypatch.setattr(payment_service, "gateway", lambda: gw)
    monkeypatch.setattr(settings, "payment_retry_backoff_s", 0.0)
    return gw


class Sent(list[Event]):
    """What the agent publishes (captured instead of sent), and a signal when something is."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    out = Sent()

    async def capture(event: Event, *args: Any, **kwargs: Any) -> None:
        out.append(event)
        out.arrived.set()

    monkeypatch.setattr(payment_module, "publish", capture)
    return out


# The table outlives one test_context, so each test uses its own order.
def request(order: str, amount: float = 40.0) -> bytes:
    """The saga's payment request for the order (the same id every time it asks)."""
    data = PaymentRequestData(orderId=order, customerId="c-1", amount=amount)
    return encode(
        PaymentRequested(eventId=event_id("PaymentRequested", order), timestamp=utcnow(), data=data)
    )


def home(order: str) -> int:
    """The partition of payment-requests Kafka's default partitioner gives the order's key."""
    return key_hash(order.encode()) % REQUESTS.partitions


async def ask(agent: Any, sent: Sent, order: str, amount: float = 40.0) -> None:
    """Put the order's request on its partition and wait for its answer: test_context's put
    returns once the agent has taken the record, not once its handler is done (a retry's
    backoff lets the put return first); every request is answered once, last."""
    before = len(sent)
    sent.arrived.clear()
    await agent.put(request(order, amount), key=order.encode(), partition=home(order))
    await asyncio.wait_for(sent.arrived.wait(), timeout=5)
    assert len(sent) == before + 1


def answers(events: list[Event]) -> list[tuple[str, str, str | None, str | None, int]]:
    """(type, event id, charge id, reason, attempts) of each payment result sent."""
    out: list[tuple[str, str, str | None, str | None, int]] = []
    for e in events:
        assert isinstance(e, PaymentSucceeded | PaymentFailed)
        out.append((e.eventType, e.eventId, e.data.chargeId, e.data.reason, e.data.attempts))
    return out


async def test_a_request_is_charged_once_and_answered(gateway: LedgerGateway, sent: Sent) -> None:
    async with payment_agent.test_context() as agent:
        await ask(agent, sent, "pa-1")

    assert gateway.calls == [("pa-1", 1)]
    rec = get_payment("pa-1")
    assert rec is not None
    assert (rec.status, rec.chargeId, rec.attempts) == ("SUCCEEDED", "ch-pa-1", 1)
    assert rec.applied == {REQUESTS.name: 0}
    assert answers(sent) == [
        ("PaymentSucceeded", event_id("PaymentSucceeded", "pa-1"), "ch-pa-1", None, 1)
    ]
    assert sent[0].causationId == event_id("PaymentRequested", "pa-1")


async def test_a_redelivered_request_charges_no_one_and_answers_again_the_same(
    gateway: LedgerGateway, sent: Sent
) -> None:
    async with payment_agent.test_context() as agent:
        await ask(agent, sent, "pa-2")
        first = get_payment("pa-2")

        # When offset 0 is delivered again (a crash before the offset commit)
        agent.sent_offset = 0
        await ask(agent, sent, "pa-2")

        # Then nobody is charged again, and the same answer goes out again (its send may have
        # been lost), with the same event id
        assert gateway.calls == [("pa-2", 1)]
        assert get_payment("pa-2") == first
        assert len(sent) == 2
        assert answers(sent)[0] == answers(sent)[1]


async def test_the_saga_asking_again_is_not_charged_twice_and_gets_the_same_answer(
    gateway: LedgerGateway, sent: Sent
) -> None:
    async with payment_agent.test_context() as agent:
        await ask(agent, sent, "pa-3")

        # When the saga, re-driven (a deadline, a saga rebuilt behind its request), asks again:
        # a new record, offset 1
        await ask(agent, sent, "pa-3")

        # Then the stored payment answers it: no second gateway call, the same answer
        assert gateway.calls == [("pa-3", 1)]
        assert [a[0] for a in answers(sent)] == ["PaymentSucceeded"] * 2
        assert answers(sent)[0] == answers(sent)[1]
        rec = get_payment("pa-3")
        assert rec is not None and rec.applied == {REQUESTS.name: 0}  # the charging record's


async def test_a_request_whose_payment_record_was_lost_is_charged_under_the_same_key(
    gateway: LedgerGateway, sent: Sent
) -> None:
    async with payment_agent.test_context() as agent:
        await ask(agent, sent, "pa-4")
        # Given a crash that lost the payment's changelog write (the table restored without it)
        payments_table.data.pop(b"pa-4")

        # When the request is delivered again
        agent.sent_offset = 0
        await ask(agent, sent, "pa-4")

        # Then the gateway is asked again under the same idempotency key (the order id), which
        # answers with the first charge: one charge, the same answer
        assert gateway.calls == [("pa-4", 1), ("pa-4", 1)]
        assert answers(sent)[0] == answers(sent)[1]
        rec = get_payment("pa-4")
        assert rec is not None and rec.chargeId == "ch-pa-4"


async def test_a_declined_charge_is_answered_payment_failed(
    gateway: LedgerGateway, sent: Sent
) -> None:
    async with payment_agent.test_context() as agent:
        await ask(agent, sent, "pa-5", amount=500.0)
        await ask(agent, sent, "pa-5", amount=500.0)

    assert gateway.calls == [("pa-5", 1)]  # declined is an answer: not retried, not again
    rec = get_payment("pa-5")
    assert rec is not None and (rec.status, rec.chargeId) == ("FAILED", None)
    failed = ("PaymentFailed", event_id("PaymentFailed", "pa-5"), None, "amount_over_limit", 1)
    assert answers(sent) == [failed, failed]


async def test_a_transient_error_is_retried_and_the_charge_goes_through(
    gateway: LedgerGateway, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "payment_max_attempts", 3)
    gateway.transient = 2
    async with payment_agent.test_context() as agent:
        await ask(agent, sent, "pa-6")

    assert gateway.calls == [("pa-6", 1), ("pa-6", 2), ("pa-6", 3)]
    assert answers(sent) == [
        ("PaymentSucceeded", event_id("PaymentSucceeded", "pa-6"), "ch-pa-6", None, 3)
    ]


async def test_a_gateway_unavailable_for_every_attempt_is_answered_payment_failed(
    gateway: LedgerGateway, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "payment_max_attempts", 4)
    gateway.transient = 4
    async with payment_agent.test_context() as agent:
        await ask(agent, sent, "pa-7")
        # Then every attempt called the gateway, and the order is answered as failed (the saga
        # cancels it and releases its stock)
        assert gateway.calls == [("pa-7", 1), ("pa-7", 2), ("pa-7", 3), ("pa-7", 4)]
        reason = "gateway_unavailable: gateway timeout (attempt 4)"
        failed = ("PaymentFailed", event_id("PaymentFailed", "pa-7"), None, reason, 4)
        assert answers(sent) == [failed]
        rec = get_payment("pa-7")
        assert rec is not None and rec.status == "FAILED"

        # And the failure is final: the saga asking again gets it, the gateway is not asked
        await ask(agent, sent, "pa-7")
        assert len(gateway.calls) == 4
        assert answers(sent) == [failed, failed]


async def test_a_request_placed_by_another_partitioner_is_charged_only_where_it_belongs(
    gateway: LedgerGateway, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    republished: list[tuple[str, bytes]] = []

    async def send(name: str, key: bytes, raw: bytes, headers: dict[str, bytes] | None) -> None:
        republished.append((name, key))

    monkeypatch.setattr(application, "send", send)
    async with payment_agent.test_context() as agent:
        # Given the request on another partition than its order's
        other = (home("pa-8") + 1) % REQUESTS.partitions
        await agent.put(request("pa-8"), key=b"pa-8", partition=other)

        # Then it is re-published under the order's key, and nobody is charged or answered here
        assert republished == [(REQUESTS.name, b"pa-8")]
        assert gateway.calls == [] and sent == [] and get_payment("pa-8") is None

        # When the copy comes in on the order's partition, it is charged there, once
        await ask(agent, sent, "pa-8")
        assert gateway.calls == [("pa-8", 1)]
        assert [a[0] for a in answers(sent)] == ["PaymentSucceeded"]

"""Payment rules, Given / When / Then: the record of a charge, the event that reports it, the
simulated gateway's deterministic answers, and the retry backoff."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderstream.contracts.events import (
    PaymentFailed,
    PaymentRequestData,
    PaymentRequested,
    PaymentSucceeded,
    event_id,
)
from orderstream.contracts.topics import route
from orderstream.domain.payment import Charge, PaymentRecord, backoff_s, record, result_event
from orderstream.worker.gateway import SimulatedGateway, TransientGatewayError

T = datetime(2024, 8, 15, 10, 30, tzinfo=UTC)


def request(order: str = "o-1", amount: float = 42.5, customer: str = "c-1") -> PaymentRequested:
    return PaymentRequested(
        eventId=event_id("PaymentRequested", order),
        timestamp=T,
        data=PaymentRequestData(orderId=order, customerId=customer, amount=amount),
    )


# --- the record of a charge ------------------------------------------------------------------


def test_approved_charge_is_recorded_as_succeeded() -> None:
    req = request()

    rec = record(req, Charge(True, charge_id="ch_1"), attempts=2)

    assert rec == PaymentRecord(
        orderId="o-1",
        customerId="c-1",
        amount=42.5,
        status="SUCCEEDED",
        attempts=2,
        chargeId="ch_1",
        requestEventId=req.eventId,
    )


def test_declined_charge_is_recorded_as_failed_with_the_reason() -> None:
    rec = record(request(), Charge(False, reason="customer_blocked"), attempts=1)

    assert (rec.status, rec.reason, rec.chargeId) == ("FAILED", "customer_blocked", None)


def test_gateway_that_never_answered_is_recorded_as_failed() -> None:
    rec = record(request(), None, attempts=3, transient_reason="simulated gateway timeout")

    assert (rec.status, rec.attempts, rec.chargeId) == ("FAILED", 3, None)
    assert rec.reason == "gateway_unavailable: simulated gateway timeout"


# --- the event that reports it ---------------------------------------------------------------


def test_success_is_reported_once_by_id() -> None:
    req = request()
    rec = record(req, Charge(True, charge_id="ch_1"), attempts=2)

    event = result_event(rec)

    assert isinstance(event, PaymentSucceeded)
    assert event.eventId == event_id("PaymentSucceeded", "o-1")
    assert event.causationId == req.eventId
    assert route(event) == ("payment_events", "o-1")
    assert (event.data.chargeId, event.data.amount, event.data.attempts) == ("ch_1", 42.5, 2)


def test_failure_is_reported_with_its_reason() -> None:
    event = result_event(record(request(), Charge(False, reason="amount_over_limit"), 1))

    assert isinstance(event, PaymentFailed)
    assert event.eventId == event_id("PaymentFailed", "o-1")
    assert event.data.reason == "amount_over_limit"
    assert route(event) == ("payment_events", "o-1")


def test_a_repeat_request_gets_the_same_answer() -> None:
    # The agent keeps the record; a re-sent request re-reports it under the same id.
    rec = record(request(), Charge(True, charge_id="ch_1"), attempts=1)

    first, again = result_event(rec), result_event(rec)

    assert (again.eventId, again.data) == (first.eventId, first.data)


def test_answers_for_different_orders_have_different_ids() -> None:
    a = result_event(record(request("o-1"), Charge(True, charge_id="ch_1"), 1))
    b = result_event(record(request("o-2"), Charge(True, charge_id="ch_2"), 1))

    assert a.eventId != b.eventId


# --- the simulated gateway -------------------------------------------------------------------


async def charge(
    gateway: SimulatedGateway,
    *,
    key: str = "o-1",
    amount: float = 42.5,
    customer: str = "c-1",
    attempt: int = 1,
) -> Charge:
    return await gateway.charge(
        order_id=key, customer_id=customer, amount=amount, idempotency_key=key, attempt=attempt
    )


async def test_gateway_approves_with_a_charge_id_per_idempotency_key() -> None:
    gateway = SimulatedGateway()

    first = await charge(gateway, key="o-1")
    again = await charge(gateway, key="o-1", attempt=2)
    other = await charge(gateway, key="o-2")

    assert first.approved and first.charge_id is not None
    assert first.charge_id.startswith("ch_")
    assert again.charge_id == first.charge_id  # the same key charges once
    assert other.charge_id != first.charge_id


@pytest.mark.parametrize(("amount", "approved"), [(999.99, True), (1000.0, True), (1000.01, False)])
async def test_gateway_declines_amounts_over_the_limit(amount: float, approved: bool) -> None:
    result = await charge(SimulatedGateway(limit_per_order=1000.0), amount=amount)

    assert result.approved is approved
    assert result.reason == (None if approved else "amount_over_limit")


async def test_gateway_declines_blocked_customers() -> None:
    gateway = SimulatedGateway(declined_customers=frozenset({"c-bad"}))

    blocked = await charge(gateway, customer="c-bad", amount=5000.0)
    allowed = await charge(gateway, customer="c-1")

    assert (blocked.approved, blocked.reason, blocked.charge_id) == (
        False,
        "customer_blocked",
        None,
    )
    assert allowed.approved


async def first_attempt_failures(rate: float, keys: int = 2000, attempt: int = 1) -> set[str]:
    gateway = SimulatedGateway(transient_failure_rate=rate)
    failed = set()
    for n in range(keys):
        try:
            await charge(gateway, key=f"order-{n}", attempt=attempt)
        except TransientGatewayError as exc:
            assert f"attempt {attempt}" in str(exc)
            failed.add(f"order-{n}")
    return failed


@pytest.mark.parametrize(("rate", "low", "high"), [(0.0, 0, 0), (0.3, 540, 660), (1.0, 2000, 2000)])
async def test_gateway_fails_transiently_at_the_configured_rate(
    rate: float,
    low: int,
    high: int,
) -> None:
    failed = await first_attempt_failures(rate)

    assert low <= len(failed) <= high


async def test_transient_failures_are_deterministic_per_key_and_attempt() -> None:
    first = await first_attempt_failures(0.3)
    again = await first_attempt_failures(0.3)
    retried = await first_attempt_failures(0.3, attempt=2)

    assert first == again
    # A retry is a fresh draw: about 30% of the first failures fail again, not all of them.
    assert 0.2 * len(first) <= len(first & retried) <= 0.4 * len(first)


# --- backoff ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "attempt", "expected"),
    [
        (0.1, 1, 0.1),
        (0.1, 2, 0.2),
        (0.1, 3, 0.4),
        (0.1, 5, 1.6),
        (0.1, 6, 2.0),
        (0.1, 50, 2.0),
        (0.5, 3, 2.0),
        (3.0, 1, 2.0),
        (0.0, 4, 0.0),
    ],
)
def test_backoff_doubles_per_attempt_up_to_two_seconds(
    base: float,
    attempt: int,
    expected: float,
) -> None:
    assert backoff_s(base, attempt) == pytest.approx(expected)

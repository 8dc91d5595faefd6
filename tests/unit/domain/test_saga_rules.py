"""Saga rules, Given / When / Then: every transition of the order state machine, what it emits
(types, keys, deterministic ids), duplicates, compensation and timeouts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest

from orderstream.contracts.events import (
    CommitStock,
    Event,
    OrderCancelled,
    OrderConfirmed,
    OrderItem,
    OrderPlaced,
    OrderPlacedData,
    OrderRejected,
    PaymentFailed,
    PaymentRequested,
    PaymentResult,
    PaymentSucceeded,
    ReleaseStock,
    ReserveStock,
    SagaInput,
    StockRejected,
    StockReserved,
    StockResult,
    decode,
    encode,
    event_id,
)
from orderstream.contracts.topics import route
from orderstream.domain import saga
from orderstream.domain.common import RuleViolation
from orderstream.domain.payment import PaymentRecord
from orderstream.domain.saga import HISTORY_LIMIT, MAX_REDRIVES, OrderState

T = datetime(2024, 8, 15, 10, 30, tzinfo=UTC)
NOW = 1_000.0  # epoch seconds handed to the rules
TIMEOUT = 30.0
ORDER = "o-1"
ITEMS = (("p-1", 2), ("p-2", 1))


def placed(
    items: Sequence[tuple[str, int]] = ITEMS, eid: str = "placed-1", order: str = ORDER
) -> OrderPlaced:
    return OrderPlaced(
        eventId=eid,
        timestamp=T,
        data=OrderPlacedData(
            orderId=order,
            customerId="c-1",
            totalAmount=42.5,
            items=[OrderItem(productId=p, quantity=q, price=1.0) for p, q in items],
        ),
    )


def reserved(product: str, qty: int = 1) -> StockReserved:
    return StockReserved(
        eventId=event_id("StockReserved", ORDER, product),
        timestamp=T,
        data=StockResult(orderId=ORDER, productId=product, quantity=qty),
    )


def rejected(product: str, reason: str = "out_of_stock") -> StockRejected:
    return StockRejected(
        eventId=event_id("StockRejected", ORDER, product),
        timestamp=T,
        data=StockResult(orderId=ORDER, productId=product, quantity=1, reason=reason),
    )


def paid(charge: str = "ch_1") -> PaymentSucceeded:
    return PaymentSucceeded(
        eventId=event_id("PaymentSucceeded", ORDER),
        timestamp=T,
        data=PaymentResult(orderId=ORDER, amount=42.5, chargeId=charge),
    )


def declined(reason: str = "amount_over_limit") -> PaymentFailed:
    return PaymentFailed(
        eventId=event_id("PaymentFailed", ORDER),
        timestamp=T,
        data=PaymentResult(orderId=ORDER, amount=42.5, reason=reason),
    )


def given(*events: SagaInput, now: float = NOW) -> OrderState:
    """The state after `events`, applied in order."""
    state: OrderState | None = None
    for ev in events:
        state = saga.decide(state, ev, now, TIMEOUT).state or state
    assert state is not None
    return state


def shape(events: list[Event]) -> list[tuple[str, str, str, str]]:
    """(type, topic role, key, event id) of each emitted event: what goes on the wire."""
    return [(e.eventType, *route(e), e.eventId) for e in events]


PAID = (placed(), reserved("p-1", 2), reserved("p-2"), paid())


def reserving() -> OrderState:
    return given(placed())


def paying() -> OrderState:
    return given(placed(), reserved("p-1", 2), reserved("p-2"))


# --- OrderPlaced -----------------------------------------------------------------------------


def test_order_placed_reserves_every_line() -> None:
    decision = saga.decide(None, placed(), NOW, TIMEOUT)

    state = decision.state
    assert state is not None
    assert state.status == "RESERVING"
    assert [(ln.productId, ln.quantity, ln.status) for ln in state.lines] == [
        ("p-1", 2, "PENDING"),
        ("p-2", 1, "PENDING"),
    ]
    assert (state.customerId, state.totalAmount, state.placedAt) == ("c-1", 42.5, T)
    assert state.deadline == NOW + TIMEOUT
    assert shape(decision.emit) == [
        ("ReserveStock", "inventory_requests", "p-1", event_id("ReserveStock", ORDER, "p-1")),
        ("ReserveStock", "inventory_requests", "p-2", event_id("ReserveStock", ORDER, "p-2")),
    ]
    assert all(e.causationId == "placed-1" for e in decision.emit)
    assert [e.data.quantity for e in decision.emit if isinstance(e, ReserveStock)] == [2, 1]


def test_order_placed_twice_is_a_duplicate() -> None:
    decision = saga.decide(reserving(), placed(), NOW, TIMEOUT)

    assert decision.duplicate and decision.state is None and decision.emit == []


def test_the_same_order_resent_under_a_new_event_id_is_a_duplicate() -> None:
    # e.g. a v1 producer retrying with a fresh timestamp: its derived event id differs.
    decision = saga.decide(reserving(), placed(eid="placed-2"), NOW, TIMEOUT)

    assert decision.duplicate and decision.state is None and decision.emit == []


def test_another_order_placed_with_the_same_order_id_is_refused() -> None:
    with pytest.raises(RuleViolation) as info:
        saga.decide(reserving(), placed(items=[("p-9", 1)], eid="placed-2"), NOW, TIMEOUT)

    assert info.value.kind == "duplicate_order_id"
    assert "placed-1" in info.value.message and "placed-2" in info.value.message


def test_the_same_event_id_with_other_content_is_refused() -> None:
    with pytest.raises(RuleViolation) as info:
        saga.decide(reserving(), placed(items=[("p-1", 5)], eid="placed-1"), NOW, TIMEOUT)

    assert info.value.kind == "conflicting_duplicate"
    assert "placed-1" in info.value.message


def test_placed_state_is_the_same_whenever_it_is_replayed() -> None:
    first = saga.decide(None, placed(), NOW, TIMEOUT)
    later = saga.decide(None, placed(), NOW + 500, TIMEOUT)

    assert shape(first.emit) == shape(later.emit)


@pytest.mark.parametrize(
    "ev",
    [reserved("p-1"), rejected("p-1"), paid(), declined()],
    ids=["reserved", "rejected", "paid", "declined"],
)
def test_reply_before_its_order_is_out_of_order(ev: SagaInput) -> None:
    decision = saga.decide(None, ev, NOW, TIMEOUT)

    assert decision.out_of_order and "never placed" in decision.out_of_order
    assert decision.ahead  # the order's state may be rebuilt behind it: set aside, not parked
    assert not decision.duplicate and decision.state is None and decision.emit == []


def test_timer_event_for_an_unknown_order_is_only_stale() -> None:
    decision = saga.decide(None, saga.timeout_event(ORDER, "RESERVING", 0.0), NOW, TIMEOUT)

    assert decision.duplicate and decision.out_of_order is None


# --- RESERVING -> PAYING ---------------------------------------------------------------------


def test_first_reservation_marks_its_line_and_waits_for_the_rest() -> None:
    decision = saga.decide(reserving(), reserved("p-1", 2), NOW + 1, TIMEOUT)

    assert decision.state is not None
    assert decision.state.status == "RESERVING"
    assert [ln.status for ln in decision.state.lines] == ["RESERVED", "PENDING"]
    assert decision.emit == []


def test_last_reservation_requests_payment() -> None:
    state = given(placed(), reserved("p-1", 2))

    decision = saga.decide(state, reserved("p-2"), NOW + 5, TIMEOUT)

    assert decision.state is not None
    assert decision.state.status == "PAYING"
    assert decision.state.deadline == NOW + 5 + TIMEOUT
    assert decision.state.redrives == 0
    assert shape(decision.emit) == [
        ("PaymentRequested", "payment_requests", ORDER, event_id("PaymentRequested", ORDER))
    ]
    [request] = decision.emit
    assert isinstance(request, PaymentRequested)
    assert (request.data.customerId, request.data.amount) == ("c-1", 42.5)
    assert request.causationId == reserved("p-2").eventId


def test_reservations_may_arrive_in_any_order() -> None:
    state = given(placed(), reserved("p-2"), reserved("p-1", 2))

    assert state.status == "PAYING"


def test_same_reservation_twice_changes_once() -> None:
    once = given(placed(), reserved("p-1", 2))

    decision = saga.decide(once, reserved("p-1", 2), NOW, TIMEOUT)

    assert decision.duplicate and decision.state is None and decision.emit == []


def test_reservation_repeated_while_paying_requests_no_second_payment() -> None:
    decision = saga.decide(paying(), reserved("p-2"), NOW, TIMEOUT)

    assert decision.duplicate and decision.emit == []


def test_reservation_for_a_product_not_in_the_order_is_out_of_order() -> None:
    decision = saga.decide(reserving(), reserved("p-9"), NOW, TIMEOUT)

    assert decision.out_of_order == (
        "StockReserved for order o-1 in RESERVING: the order has no line for p-9"
    )
    assert decision.state is None and decision.emit == []


# --- PAYING -> CONFIRMED ---------------------------------------------------------------------


def test_payment_succeeded_commits_every_line_and_confirms() -> None:
    decision = saga.decide(paying(), paid("ch_42"), NOW, TIMEOUT)

    state = decision.state
    assert state is not None
    assert (state.status, state.chargeId, state.reason, state.deadline) == (
        "CONFIRMED",
        "ch_42",
        None,
        0.0,
    )
    assert state.terminal
    assert shape(decision.emit) == [
        ("CommitStock", "inventory_requests", "p-1", event_id("CommitStock", ORDER, "p-1")),
        ("CommitStock", "inventory_requests", "p-2", event_id("CommitStock", ORDER, "p-2")),
        ("OrderConfirmed", "order_status", ORDER, event_id("OrderConfirmed", ORDER)),
    ]
    commits = [e.data for e in decision.emit if isinstance(e, CommitStock)]
    assert [(c.quantity, c.price) for c in commits] == [(2, 1.0), (1, 1.0)]  # sales need the price
    outcome = decision.emit[-1]
    assert isinstance(outcome, OrderConfirmed)
    assert outcome.data.status == "CONFIRMED"
    assert (outcome.data.customerId, outcome.data.totalAmount, outcome.data.placedAt) == (
        "c-1",
        42.5,
        T,
    )


def test_payment_succeeded_twice_confirms_once() -> None:
    confirmed = given(placed(), reserved("p-1", 2), reserved("p-2"), paid())

    decision = saga.decide(confirmed, paid(), NOW, TIMEOUT)

    assert decision.duplicate and decision.state is None and decision.emit == []


@pytest.mark.parametrize("ev", [paid(), declined()], ids=["paid", "declined"])
def test_payment_result_before_payment_was_requested_is_out_of_order(ev: SagaInput) -> None:
    decision = saga.decide(reserving(), ev, NOW, TIMEOUT)

    assert decision.out_of_order and "payment was never requested" in decision.out_of_order
    assert decision.ahead  # a state rebuilt behind the payment request it sent
    assert not decision.duplicate and decision.state is None and decision.emit == []


@pytest.mark.parametrize("ev", [paid(), declined()], ids=["paid", "declined"])
def test_payment_result_for_a_rejected_order_is_out_of_order(ev: SagaInput) -> None:
    decision = saga.decide(given(placed(), rejected("p-1")), ev, NOW, TIMEOUT)

    assert decision.out_of_order and "payment was never requested" in decision.out_of_order
    assert not decision.ahead  # money for a rejected order: an anomaly, parked


def test_confirmed_is_final_and_a_contradicting_failure_is_out_of_order() -> None:
    confirmed = given(placed(), reserved("p-1", 2), reserved("p-2"), paid())

    decision = saga.decide(confirmed, declined(), NOW, TIMEOUT)

    assert decision.out_of_order and "ended the other way" in decision.out_of_order
    assert decision.state is None and decision.emit == []


def test_cancelled_is_final_and_a_contradicting_success_is_out_of_order() -> None:
    cancelled = given(placed(), reserved("p-1", 2), reserved("p-2"), declined())

    decision = saga.decide(cancelled, paid(), NOW, TIMEOUT)

    assert decision.out_of_order and decision.state is None and decision.emit == []


@pytest.mark.parametrize("state", [paying, lambda: given(*PAID)], ids=["paying", "confirmed"])
def test_stock_refused_after_every_line_was_reserved_is_out_of_order(
    state: Callable[[], OrderState],
) -> None:
    decision = saga.decide(state(), rejected("p-1"), NOW, TIMEOUT)

    assert decision.out_of_order and "already reserved" in decision.out_of_order
    assert decision.state is None and decision.emit == []


def test_outcome_lists_the_order_items_v3() -> None:
    decision = saga.decide(paying(), paid(), NOW, TIMEOUT)

    outcome = decision.emit[-1]
    assert isinstance(outcome, OrderConfirmed) and outcome.schemaVersion == 3
    assert [(i.productId, i.quantity, i.price) for i in outcome.data.items] == [
        ("p-1", 2, 1.0),
        ("p-2", 1, 1.0),
    ]


# --- compensation ----------------------------------------------------------------------------


def test_rejection_of_the_second_item_releases_the_first() -> None:
    state = given(placed(), reserved("p-1", 2))

    decision = saga.decide(state, rejected("p-2"), NOW, TIMEOUT)

    assert decision.state is not None
    assert decision.state.status == "REJECTED"
    assert decision.state.reason == "out_of_stock: p-2"
    assert [ln.status for ln in decision.state.lines] == ["RESERVED", "REJECTED"]
    assert shape(decision.emit) == [
        ("ReleaseStock", "inventory_requests", "p-1", event_id("ReleaseStock", ORDER, "p-1")),
        ("OrderRejected", "order_status", ORDER, event_id("OrderRejected", ORDER)),
    ]
    release = decision.emit[0]
    assert isinstance(release, ReleaseStock) and release.data.quantity == 2
    assert release.data.price is None  # only a commit carries the price
    assert isinstance(decision.emit[1], OrderRejected)
    assert decision.emit[1].data.reason == "out_of_stock: p-2"


def test_rejection_also_releases_lines_still_pending() -> None:
    # p-3's reserve may still land after the rejection: its release must follow it.
    state = given(placed(items=[("p-1", 1), ("p-2", 1), ("p-3", 1)]), reserved("p-1"))

    decision = saga.decide(state, rejected("p-2", "unknown_product"), NOW, TIMEOUT)

    assert [(e.eventType, route(e)[1]) for e in decision.emit] == [
        ("ReleaseStock", "p-1"),
        ("ReleaseStock", "p-3"),
        ("OrderRejected", ORDER),
    ]
    assert decision.state is not None
    assert decision.state.reason == "unknown_product: p-2"


def test_rejection_of_a_single_item_order_releases_nothing() -> None:
    decision = saga.decide(given(placed(items=[("p-1", 1)])), rejected("p-1"), NOW, TIMEOUT)

    assert [e.eventType for e in decision.emit] == ["OrderRejected"]


def test_second_rejection_is_ignored() -> None:
    state = given(placed(), rejected("p-1"))

    decision = saga.decide(state, rejected("p-2"), NOW, TIMEOUT)

    assert decision.duplicate and decision.state is None and decision.emit == []


def test_payment_failure_releases_every_line_and_cancels() -> None:
    decision = saga.decide(paying(), declined("customer_blocked"), NOW, TIMEOUT)

    assert decision.state is not None
    assert (decision.state.status, decision.state.reason) == (
        "CANCELLED",
        "payment_failed: customer_blocked",
    )
    assert shape(decision.emit) == [
        ("ReleaseStock", "inventory_requests", "p-1", event_id("ReleaseStock", ORDER, "p-1")),
        ("ReleaseStock", "inventory_requests", "p-2", event_id("ReleaseStock", ORDER, "p-2")),
        ("OrderCancelled", "order_status", ORDER, event_id("OrderCancelled", ORDER)),
    ]
    assert isinstance(decision.emit[-1], OrderCancelled)


def test_payment_failure_twice_cancels_once() -> None:
    cancelled = given(placed(), reserved("p-1", 2), reserved("p-2"), declined())

    decision = saga.decide(cancelled, declined(), NOW, TIMEOUT)

    assert decision.duplicate and decision.state is None and decision.emit == []


@pytest.mark.parametrize(
    "terminal",
    [
        (placed(), rejected("p-2")),
        (placed(), reserved("p-1", 2), reserved("p-2"), declined()),
    ],
    ids=["rejected", "cancelled"],
)
def test_late_reservation_after_the_end_is_released(terminal: tuple[SagaInput, ...]) -> None:
    state = given(*terminal)

    decision = saga.decide(state, reserved("p-1", 2), NOW, TIMEOUT)

    assert decision.state is None  # the outcome stands
    assert shape(decision.emit) == [
        ("ReleaseStock", "inventory_requests", "p-1", event_id("ReleaseStock", ORDER, "p-1"))
    ]
    release = decision.emit[0]
    assert isinstance(release, ReleaseStock) and release.data.quantity == 2


def test_late_reservation_after_confirmation_is_committed_not_released() -> None:
    """The commit may not have reached the stock yet (commits are batched): a release sent now
    would get there first and put the sold units back."""
    state = given(placed(), reserved("p-1", 2), reserved("p-2"), paid())

    decision = saga.decide(state, reserved("p-1", 2), NOW, TIMEOUT)

    assert decision.state is None and decision.duplicate
    assert shape(decision.emit) == [
        ("CommitStock", "inventory_requests", "p-1", event_id("CommitStock", ORDER, "p-1"))
    ]
    commit = decision.emit[0]
    assert isinstance(commit, CommitStock) and commit.data.quantity == 2


# --- timeouts --------------------------------------------------------------------------------


def timeout(state: OrderState, step: str | None = None) -> SagaInput:
    return saga.timeout_event(state.orderId, step or state.status, state.deadline)


def test_timeout_before_the_deadline_is_stale() -> None:
    state = reserving()

    decision = saga.decide(state, timeout(state), state.deadline - 0.001, TIMEOUT)

    assert decision.duplicate and decision.state is None and decision.emit == []


def test_timeout_of_a_step_already_left_is_stale() -> None:
    state = paying()

    decision = saga.decide(state, timeout(state, "RESERVING"), state.deadline + 1, TIMEOUT)

    assert decision.duplicate and decision.emit == []


def test_timeout_while_reserving_resends_only_the_pending_reserves() -> None:
    state = given(placed(), reserved("p-1", 2))
    now = state.deadline

    decision = saga.decide(state, timeout(state), now, TIMEOUT)

    assert decision.state is not None
    assert (decision.state.status, decision.state.redrives) == ("RESERVING", 1)
    assert decision.state.deadline == now + 2 * TIMEOUT  # the wait doubles per re-drive
    assert shape(decision.emit) == [
        ("ReserveStock", "inventory_requests", "p-2", event_id("ReserveStock", ORDER, "p-2"))
    ]


def test_reserving_gives_up_after_max_redrives_and_releases_everything() -> None:
    state = given(placed(), reserved("p-1", 2))
    for n in range(MAX_REDRIVES):
        decision = saga.decide(state, timeout(state), state.deadline, TIMEOUT)
        assert [e.eventType for e in decision.emit] == ["ReserveStock"], f"re-drive {n + 1}"
        assert decision.state is not None
        state = decision.state

    decision = saga.decide(state, timeout(state), state.deadline, TIMEOUT)

    assert decision.state is not None
    assert (decision.state.status, decision.state.reason) == (
        "REJECTED",
        "timeout: inventory did not answer",
    )
    assert [(e.eventType, route(e)[1]) for e in decision.emit] == [
        ("ReleaseStock", "p-1"),
        ("ReleaseStock", "p-2"),
        ("OrderRejected", ORDER),
    ]


def test_timeout_while_paying_resends_the_same_payment_request_and_never_gives_up() -> None:
    state = paying()
    for _ in range(MAX_REDRIVES + 3):
        decision = saga.decide(state, timeout(state), state.deadline, TIMEOUT)
        assert decision.state is not None
        state = decision.state
        assert state.status == "PAYING"
        assert shape(decision.emit) == [
            ("PaymentRequested", "payment_requests", ORDER, event_id("PaymentRequested", ORDER))
        ]


def test_redrives_restart_when_the_order_moves_on() -> None:
    state = given(placed(), reserved("p-1", 2))
    state = saga.decide(state, timeout(state), state.deadline, TIMEOUT).state or state
    assert state.redrives == 1

    after = saga.decide(state, reserved("p-2"), state.deadline - 1, TIMEOUT).state

    assert after is not None
    assert (after.status, after.redrives) == ("PAYING", 0)


@pytest.mark.parametrize("step", ["RESERVING", "PAYING", "CONFIRMED"])
def test_timeout_after_the_end_is_ignored(step: str) -> None:
    state = given(placed(), reserved("p-1", 2), reserved("p-2"), paid())

    decision = saga.decide(state, saga.timeout_event(ORDER, step, 0.0), NOW + 10_000, TIMEOUT)

    assert decision.duplicate and decision.state is None and decision.emit == []


def test_timeout_ids_differ_per_deadline() -> None:
    first = saga.timeout_event(ORDER, "PAYING", 1030.0)

    assert first.eventId == saga.timeout_event(ORDER, "PAYING", 1030.0).eventId
    assert first.eventId != saga.timeout_event(ORDER, "PAYING", 1060.0).eventId
    assert first.eventId != saga.timeout_event(ORDER, "RESERVING", 1030.0).eventId
    assert route(first) == ("saga_timeouts", ORDER)


def test_history_is_capped() -> None:
    state = paying()
    for _ in range(HISTORY_LIMIT + 5):
        state = saga.decide(state, timeout(state), state.deadline, TIMEOUT).state or state

    assert len(state.history) == HISTORY_LIMIT
    assert state.history[-1].eventType == "SagaTimedOut"


# --- what a restarted agent re-sends ---------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ((placed(), reserved("p-1", 2)), ["ReserveStock:p-2"]),
        ((placed(), reserved("p-1", 2), reserved("p-2")), ["PaymentRequested:o-1"]),
        (
            (placed(), reserved("p-1", 2), reserved("p-2"), paid()),
            ["CommitStock:p-1", "CommitStock:p-2", "OrderConfirmed:o-1"],
        ),
        (
            (placed(), reserved("p-1", 2), rejected("p-2")),
            ["ReleaseStock:p-1", "OrderRejected:o-1"],
        ),
        (
            (placed(), reserved("p-1", 2), reserved("p-2"), declined()),
            ["ReleaseStock:p-1", "ReleaseStock:p-2", "OrderCancelled:o-1"],
        ),
    ],
    ids=["reserving", "paying", "confirmed", "rejected", "cancelled"],
)
def test_pending_commands_repeat_what_the_state_waits_on(
    events: tuple[SagaInput, ...],
    expected: list[str],
) -> None:
    state = given(*events)

    emitted = saga.pending_commands(state, "cause")

    assert [f"{e.eventType}:{route(e)[1]}" for e in emitted] == expected


def test_everything_the_saga_emits_passes_the_codec() -> None:
    decisions = [
        saga.decide(None, placed(), NOW, TIMEOUT),
        saga.decide(given(placed(), reserved("p-1", 2)), reserved("p-2"), NOW, TIMEOUT),
        saga.decide(paying(), paid(), NOW, TIMEOUT),
        saga.decide(paying(), declined(), NOW, TIMEOUT),
        saga.decide(given(placed(), reserved("p-1", 2)), rejected("p-2"), NOW, TIMEOUT),
    ]

    for event in (e for d in decisions for e in d.emit):
        assert decode(encode(event), (event.eventType,)) == event


# --- deadlines under a backlog ---------------------------------------------------------------

B = saga.Backlog


def test_a_step_waits_while_its_backlog_is_worked_through() -> None:
    before = {"inventory_requests": B(consumed=100, waiting=5_000)}
    now = {"inventory_requests": B(consumed=900, waiting=4_000), "payment_events": B(50, 0)}

    assert saga.held_steps(before, now, limit=1_000) == {"RESERVING"}


def test_a_stopped_stage_holds_no_deadline() -> None:
    before = {"payment_requests": B(consumed=100, waiting=5_000)}
    now = {"payment_requests": B(consumed=100, waiting=6_000)}

    assert saga.held_steps(before, now, limit=1_000) == frozenset()


def test_a_small_backlog_holds_no_deadline() -> None:
    before = {"inventory_events": B(consumed=100, waiting=900)}
    now = {"inventory_events": B(consumed=200, waiting=1_000)}

    assert saga.held_steps(before, now, limit=1_000) == frozenset()


def test_a_topic_seen_for_the_first_time_counts_as_moving() -> None:
    now = {"payment_events": B(consumed=0, waiting=2_000), "inventory_events": B(0, 10)}

    assert saga.held_steps({}, now, limit=1_000) == {"PAYING"}


# --- inline payment: the saga takes the charge in its own step -------------------------------


def _record(status: str, charge: str | None, reason: str | None = None) -> PaymentRecord:
    return PaymentRecord(
        orderId=ORDER,
        customerId="c-1",
        amount=42.5,
        status=status,  # type: ignore[arg-type]
        attempts=1,
        chargeId=charge,
        reason=reason,
        requestEventId=event_id("PaymentRequested", ORDER),
    )


def test_an_inline_charge_confirms_keeps_its_record_and_reports_the_payment() -> None:
    decision = saga.charged(paying(), _record("SUCCEEDED", "ch_7"), NOW)

    state = decision.state
    assert state is not None and state.status == "CONFIRMED" and state.chargeId == "ch_7"
    assert state.payment is not None and state.payment.chargeId == "ch_7"
    assert [(e.eventType, route(e)[0]) for e in decision.emit] == [
        ("PaymentSucceeded", "payment_events"),
        ("CommitStock", "inventory_requests"),
        ("CommitStock", "inventory_requests"),
        ("OrderConfirmed", "order_status"),
    ]
    # A redelivery sends the same events again, the payment event included
    assert shape(saga.pending_commands(state, "again")) == shape(decision.emit)


def test_an_inline_decline_cancels_releases_and_reports_the_failure() -> None:
    decision = saga.charged(paying(), _record("FAILED", None, "amount_over_limit"), NOW)

    state = decision.state
    assert state is not None and state.status == "CANCELLED"
    assert state.reason == "payment_failed: amount_over_limit"
    assert [e.eventType for e in decision.emit] == [
        "PaymentFailed",
        "ReleaseStock",
        "ReleaseStock",
        "OrderCancelled",
    ]
    assert shape(saga.pending_commands(state, "again")) == shape(decision.emit)


def test_an_inline_charge_for_a_settled_order_changes_nothing() -> None:
    confirmed = given(*PAID)
    decision = saga.charged(confirmed, _record("SUCCEEDED", "ch_1"), NOW)
    assert decision.state is None and decision.duplicate and decision.emit == []


# --- settled: the outcome's time, kept ---------------------------------------------------------


def test_a_settled_order_keeps_when_it_settled_and_every_re_sent_outcome_says_so() -> None:
    """The customer's history lists a settled order from its state (projections
    `summary_of_state`): the state must say what its outcome said, however often re-sent."""
    assert paying().settledAt is None
    decision = saga.decide(paying(), paid(), NOW, TIMEOUT)
    state = decision.state
    assert state is not None and state.status == "CONFIRMED"
    (first,) = [e for e in decision.emit if e.eventType == "OrderConfirmed"]
    assert state.settledAt is not None and first.timestamp == state.settledAt

    # When a record comes again after the order settled, and the outcome is re-sent
    later = saga.decide(state, reserved("p-2"), NOW + 5, TIMEOUT).state or state
    (again,) = [e for e in saga.pending_commands(later, "cause") if e.eventType == "OrderConfirmed"]

    # Then the settled time and the outcome's timestamp stay those of the first
    assert later.settledAt == state.settledAt
    assert again.timestamp == first.timestamp

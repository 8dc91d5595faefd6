"""The order saga as a forward-only state machine: reserve every item, take payment, confirm;
or reject (stock) / cancel (payment) and release every hold. Each order ends in one terminal state.

RESERVING can be compensated (release holds); payment is the pivot: once requested it is only
retried forward (the payment agent answers idempotently), never abandoned half-way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Literal, NamedTuple, cast

import msgspec

from orderstream.contracts.events import (
    CommitStock,
    Event,
    OrderCancelled,
    OrderConfirmed,
    OrderItem,
    OrderOutcome,
    OrderPlaced,
    OrderRejected,
    PaymentFailed,
    PaymentRequestData,
    PaymentRequested,
    PaymentSucceeded,
    ReleaseStock,
    ReserveStock,
    SagaInput,
    SagaTimedOut,
    SagaTimeoutData,
    StatusEvent,
    StockLine,
    StockRejected,
    StockReserved,
    TerminalStatus,
    event_id,
    utcnow,
)
from orderstream.domain.common import Decision, RuleViolation
from orderstream.domain.payment import PaymentRecord, result_event
from orderstream.domain.state import State, replace

Status = Literal["RESERVING", "PAYING", "CONFIRMED", "REJECTED", "CANCELLED"]
TERMINAL: frozenset[str] = frozenset({"CONFIRMED", "REJECTED", "CANCELLED"})
# Re-sends of a step's commands on timeout before the saga gives up on RESERVING. The wait doubles
# each time (60 s, 120 s, ... by default), so a backlog is not mistaken for a lost reply.
MAX_REDRIVES = 4
HISTORY_LIMIT = 64


class Line(State, frozen=True, kw_only=True):
    productId: str
    quantity: int
    price: float = 0.0
    status: Literal["PENDING", "RESERVED", "REJECTED"] = "PENDING"


class HistoryEntry(State, frozen=True, kw_only=True):
    eventType: str
    eventId: str
    at: datetime


class OrderState(State, frozen=True, kw_only=True):
    orderId: str
    customerId: str
    placedEventId: str
    placedDigest: str = ""
    totalAmount: float
    placedAt: datetime
    updatedAt: datetime
    status: Status = "RESERVING"
    lines: list[Line]
    reason: str | None = None
    chargeId: str | None = None
    # The charge, when the saga took the payment in its own step (inline payment).
    payment: PaymentRecord | None = None
    deadline: float = 0.0
    redrives: int = 0
    applied: dict[str, int] = {}
    history: list[HistoryEntry] = []
    #: When the order settled: its outcome's timestamp, the same in every re-sent outcome.
    #: The customer's history lists the order from this state (orderstream/domain/projections.py
    #: `summary_of_state`). None: not settled, or settled before the state kept it.
    settledAt: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


# --- the commands and events the saga emits (ids are deterministic: a re-send is a duplicate) ---


def _stock_commands(
    cls: type[ReserveStock | ReleaseStock | CommitStock],
    state: OrderState,
    lines: list[Line],
    cause: str,
) -> list[Event]:
    """One command per line; its id is the same every time, so a re-send is a duplicate. A
    commit carries the line's price: the inventory records the sale when it sells the hold."""
    priced = cls is CommitStock
    return [
        cls(
            eventId=event_id(cls.__name__, state.orderId, ln.productId),
            timestamp=utcnow(),
            causationId=cause,
            data=StockLine(
                orderId=state.orderId,
                productId=ln.productId,
                quantity=ln.quantity,
                price=ln.price if priced else None,
            ),
        )
        for ln in lines
    ]


def _reserve(state: OrderState, lines: list[Line], cause: str) -> list[Event]:
    return _stock_commands(ReserveStock, state, lines, cause)


def _release(state: OrderState, lines: list[Line], cause: str) -> list[Event]:
    return _stock_commands(ReleaseStock, state, lines, cause)


def _commit(state: OrderState, cause: str) -> list[Event]:
    return _stock_commands(CommitStock, state, state.lines, cause)


def _pay(state: OrderState, cause: str) -> PaymentRequested:
    return PaymentRequested(
        eventId=event_id("PaymentRequested", state.orderId),
        timestamp=utcnow(),
        causationId=cause,
        data=PaymentRequestData(
            orderId=state.orderId, customerId=state.customerId, amount=state.totalAmount
        ),
    )


_OUTCOME: dict[str, type[StatusEvent]] = {
    "CONFIRMED": OrderConfirmed,
    "REJECTED": OrderRejected,
    "CANCELLED": OrderCancelled,
}


def outcome_event(state: OrderState, cause: str) -> StatusEvent:
    cls = _OUTCOME[state.status]
    return cls(
        eventId=event_id(cls.__name__, state.orderId),
        timestamp=state.settledAt or utcnow(),
        causationId=cause,
        data=OrderOutcome(
            orderId=state.orderId,
            customerId=state.customerId,
            status=cast(TerminalStatus, state.status),  # _OUTCOME has the terminal ones only
            reason=state.reason,
            totalAmount=state.totalAmount,
            placedAt=state.placedAt,
            items=[
                OrderItem(productId=ln.productId, quantity=ln.quantity, price=ln.price)
                for ln in state.lines
            ],
        ),
    )


def timeout_event(order_id: str, step: str, deadline: float) -> SagaTimedOut:
    return SagaTimedOut(
        eventId=event_id("SagaTimedOut", order_id, step, repr(deadline)),
        timestamp=utcnow(),
        data=SagaTimeoutData(orderId=order_id, step=step),
    )


# --- transitions -----------------------------------------------------------------------------


def _moved(state: OrderState, ev: SagaInput, now: float, **changes: object) -> OrderState:
    entry = HistoryEntry(eventType=ev.eventType, eventId=ev.eventId, at=utcnow())
    if changes.get("status") in TERMINAL and state.settledAt is None:
        changes["settledAt"] = entry.at
    return replace(
        state,
        updatedAt=entry.at,
        history=[*state.history, entry][-HISTORY_LIMIT:],
        **changes,
    )


def _out_of_order(
    state: OrderState, ev: SagaInput, why: str, *, ahead: bool = False
) -> Decision[OrderState]:
    return Decision(
        out_of_order=f"{ev.eventType} for order {state.orderId} in {state.status}: {why}",
        ahead=ahead,
    )


def _settle(
    state: OrderState, ev: SagaInput, now: float, status: Status, reason: str | None
) -> Decision[OrderState]:
    new = _moved(state, ev, now, status=status, reason=reason, deadline=0.0)
    if status == "CONFIRMED":
        emit = _commit(new, ev.eventId)
    else:  # compensate: every line may hold stock (a PENDING reserve may still land first)
        emit = _release(new, [ln for ln in new.lines if ln.status != "REJECTED"], ev.eventId)
    return Decision(new, [*emit, outcome_event(new, ev.eventId)])


def content_digest(ev: OrderPlaced) -> str:
    """What the order asks for, independent of envelope fields (event id, timestamp): a digest
    of its data as JSON, every field written (None as null), as the versions before wrote it."""
    return hashlib.blake2b(msgspec.json.encode(ev.data), digest_size=12).hexdigest()


def place(
    state: OrderState | None, ev: OrderPlaced, now: float, timeout_s: float
) -> Decision[OrderState]:
    digest = content_digest(ev)
    if state is not None:
        same_event = not state.placedDigest and state.placedEventId == ev.eventId
        if state.placedDigest == digest or same_event:  # the same order again
            return Decision(duplicate=True)
        if state.placedEventId == ev.eventId:
            raise RuleViolation(
                "conflicting_duplicate",
                f"event {ev.eventId} was seen before with other content for order "
                f"{state.orderId}; the first one stands",
            )
        raise RuleViolation(
            "duplicate_order_id",
            f"order {state.orderId} was already placed by event {state.placedEventId}; "
            f"event {ev.eventId} reuses the order id with other content",
        )
    d = ev.data
    new = OrderState(
        orderId=d.orderId,
        customerId=d.customerId,
        placedEventId=ev.eventId,
        placedDigest=digest,
        totalAmount=d.totalAmount,
        placedAt=ev.timestamp,
        updatedAt=utcnow(),
        lines=[Line(productId=i.productId, quantity=i.quantity, price=i.price) for i in d.items],
        deadline=now + timeout_s,
        history=[HistoryEntry(eventType=ev.eventType, eventId=ev.eventId, at=utcnow())],
    )
    return Decision(new, _reserve(new, new.lines, ev.eventId))


def _set_line(state: OrderState, product: str, status: str) -> list[Line]:
    return [replace(ln, status=status) if ln.productId == product else ln for ln in state.lines]


def stock_reserved(
    state: OrderState, ev: StockReserved, now: float, timeout_s: float
) -> Decision[OrderState]:
    product = ev.data.productId
    if state.terminal:
        # A hold that lands after the order settled (a late or re-sent reserve) is released,
        # or, the order being confirmed, committed: the answer to a reserve re-sent before the
        # commit went out (commits are batched: orderstream/worker/commit_batches.py), whose
        # release would reach the stock before the commit and put the sold units back. The
        # commit is the order's own (same id): after it, it finds no hold and changes nothing.
        lines = [ln for ln in state.lines if ln.productId == product]
        if state.status == "CONFIRMED":
            return Decision(
                emit=_stock_commands(CommitStock, state, lines, ev.eventId), duplicate=True
            )
        return Decision(emit=_release(state, lines, ev.eventId), duplicate=True)
    line = next((ln for ln in state.lines if ln.productId == product), None)
    if line is None:
        return _out_of_order(state, ev, f"the order has no line for {product}")
    if state.status != "RESERVING" or line.status != "PENDING":
        return Decision(duplicate=True)
    lines = _set_line(state, product, "RESERVED")
    if all(ln.status == "RESERVED" for ln in lines):
        new = _moved(
            state, ev, now, lines=lines, status="PAYING", deadline=now + timeout_s, redrives=0
        )
        return Decision(new, [_pay(new, ev.eventId)])
    return Decision(_moved(state, ev, now, lines=lines))


def stock_rejected(state: OrderState, ev: StockRejected, now: float) -> Decision[OrderState]:
    if state.status == "REJECTED":  # another line refused too, or the same answer again
        return Decision(duplicate=True)
    if state.status != "RESERVING":  # every line holds stock: a refusal contradicts the hold
        return _out_of_order(state, ev, "all its lines are already reserved")
    product = ev.data.productId
    new = replace(state, lines=_set_line(state, product, "REJECTED"))
    return _settle(new, ev, now, "REJECTED", f"{ev.data.reason or 'rejected'}: {product}")


def _payment_out_of_order(state: OrderState, ev: SagaInput) -> Decision[OrderState]:
    if state.status == "RESERVING":  # a state rebuilt behind the payment request it sent
        return _out_of_order(state, ev, "payment was never requested", ahead=True)
    if state.status == "REJECTED":
        return _out_of_order(state, ev, "payment was never requested")
    return _out_of_order(state, ev, "the payment already ended the other way")


def payment_succeeded(state: OrderState, ev: PaymentSucceeded, now: float) -> Decision[OrderState]:
    if state.status == "CONFIRMED":
        return Decision(duplicate=True)
    if state.status != "PAYING":
        return _payment_out_of_order(state, ev)
    new = replace(state, chargeId=ev.data.chargeId)
    return _settle(new, ev, now, "CONFIRMED", None)


def payment_failed(state: OrderState, ev: PaymentFailed, now: float) -> Decision[OrderState]:
    if state.status == "CANCELLED":
        return Decision(duplicate=True)
    if state.status != "PAYING":
        return _payment_out_of_order(state, ev)
    return _settle(state, ev, now, "CANCELLED", f"payment_failed: {ev.data.reason}")


def charged(state: OrderState, rec: PaymentRecord, now: float) -> Decision[OrderState]:
    """The payment step taken inside the saga's step (inline payment): the order settles on the
    charge's outcome and keeps its record; the payment event is emitted for other consumers."""
    ev = result_event(rec)
    if isinstance(ev, PaymentSucceeded):
        decision = payment_succeeded(state, ev, now)
    else:
        decision = payment_failed(state, ev, now)
    if decision.state is None:
        return decision
    return Decision(replace(decision.state, payment=rec), [ev, *decision.emit])


def timed_out(
    state: OrderState, ev: SagaTimedOut, now: float, timeout_s: float
) -> Decision[OrderState]:
    if state.status != ev.data.step or state.terminal or now < state.deadline:
        return Decision(duplicate=True)
    if state.status == "RESERVING" and state.redrives >= MAX_REDRIVES:
        return _settle(state, ev, now, "REJECTED", "timeout: inventory did not answer")
    # Re-drive the step: its commands are idempotent where they land.
    wait = timeout_s * 2 ** (state.redrives + 1)
    new = _moved(state, ev, now, deadline=now + wait, redrives=state.redrives + 1)
    return Decision(new, pending_commands(new, ev.eventId))


# The topics (roles) a waiting step depends on: its commands, and the replies the saga reads.
STEP_TOPICS: dict[str, tuple[str, ...]] = {
    "RESERVING": ("inventory_requests", "inventory_events"),
    "PAYING": ("payment_requests", "payment_events"),
}


class Backlog(NamedTuple):
    """One topic's records for the consumer group, summed over its partitions."""

    consumed: int  # the group's committed offsets
    waiting: int  # records after them


def held_steps(
    before: Mapping[str, Backlog], now: Mapping[str, Backlog], limit: int
) -> frozenset[str]:
    """The steps whose deadlines wait: a topic they depend on has more than `limit` records
    waiting, and its consumers moved forward since the last look (`before`; a topic not looked at
    before counts as moving). Such a step's reply is queued behind a backlog, not lost: re-sending
    its commands would only add to the backlog. A stage that stopped (nothing consumed) holds
    nothing, so its orders still time out and are re-driven or settled."""
    moving = {
        role
        for role, b in now.items()
        if b.waiting > limit and (role not in before or b.consumed > before[role].consumed)
    }
    return frozenset(step for step, roles in STEP_TOPICS.items() if moving.intersection(roles))


def pending_commands(state: OrderState, cause: str) -> list[Event]:
    """The commands the current state still waits on (or, once settled, its final effects)."""
    if state.status == "RESERVING":
        return _reserve(state, [ln for ln in state.lines if ln.status == "PENDING"], cause)
    if state.status == "PAYING":
        return [_pay(state, cause)]
    paid: list[Event] = [] if state.payment is None else [result_event(state.payment)]
    if state.status == "CONFIRMED":
        return [*paid, *_commit(state, cause), outcome_event(state, cause)]
    return [
        *paid,
        *_release(state, [ln for ln in state.lines if ln.status != "REJECTED"], cause),
        outcome_event(state, cause),
    ]


def decide(
    state: OrderState | None, ev: SagaInput, now: float, timeout_s: float
) -> Decision[OrderState]:
    """One saga step. `now` is epoch seconds (passed in to keep the rules pure)."""
    if isinstance(ev, OrderPlaced):
        return place(state, ev, now, timeout_s)
    if state is None and isinstance(ev, SagaTimedOut):
        return Decision(duplicate=True)  # the timer's, for an order this worker no longer has
    if state is None:
        # A reply before its order: the order's state is not rebuilt yet (a crash lost it with
        # the commands already sent), or the order never existed: wait, then park it.
        return Decision(
            out_of_order=f"{ev.eventType} for order {ev.data.orderId}, never placed", ahead=True
        )
    if isinstance(ev, StockReserved):
        return stock_reserved(state, ev, now, timeout_s)
    if isinstance(ev, StockRejected):
        return stock_rejected(state, ev, now)
    if isinstance(ev, PaymentSucceeded):
        return payment_succeeded(state, ev, now)
    if isinstance(ev, PaymentFailed):
        return payment_failed(state, ev, now)
    return timed_out(state, ev, now, timeout_s)

"""The verifier counts records, not sets: a duplicate, a second outcome, a second charge, an
oversold shelf or an unexplained charge call each shows (devtools/verify.py, no Kafka needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from devtools.verify import (
    RunReport,
    TopicRecords,
    build_report,
    figures,
    invariant_violations,
    leaked_holds,
    unexplained_charge_calls,
)
from orderstream.worker.gateway import CallOutcome, LedgerCall, LedgerReading


@dataclass(frozen=True)
class Rec:
    """The fields of an aiokafka ConsumerRecord the verifier reads."""

    value: bytes | None
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()


def status(order: str, st: str, *, event: str | None = None, at: int = 100, **extra: Any) -> Rec:
    items = extra.pop("items", [{"productId": "P", "quantity": 1}])
    data = {"orderId": order, "status": st, "items": items, **extra}
    body = {"eventId": event or f"{st}-{order}", "data": data}
    return Rec(orjson.dumps(body), timestamp=at)


def paid(order: str, charge: str | None = None) -> Rec:
    data = {"orderId": order, "chargeId": charge or f"ch_{order}"}
    return Rec(orjson.dumps({"eventType": "PaymentSucceeded", "data": data}))


def failed(order: str) -> Rec:
    return Rec(orjson.dumps({"eventType": "PaymentFailed", "data": {"orderId": order}}))


def stock(product: str = "P", **fields: Any) -> Rec:
    values = {"productId": product, "restocked": 10, "available": 9, "sold": 1, **fields}
    return Rec(orjson.dumps(values))


def timed_out(order: str, at: int, step: str = "RESERVING") -> Rec:
    return Rec(orjson.dumps({"data": {"orderId": order, "step": step}}), timestamp=at)


def call(
    order: str, pid: int = 1, key: str | None = None, outcome: CallOutcome = "approved"
) -> LedgerCall:
    charge = f"ch_{key or order}" if outcome == "approved" else None
    return LedgerCall(order, key or order, 1, outcome, 10.0, pid, 0.0, charge)


def report(
    *,
    status_recs: Sequence[Rec] = (),
    payments: Sequence[Rec] = (),
    stock_recs: list[Rec] | None = None,
    timeouts: Sequence[Rec] = (),
    dlq: Sequence[Rec] = (),
    ledger: list[LedgerCall] | None = None,
    orders: list[str] | None = None,
) -> RunReport:
    records = TopicRecords(
        stock_recs if stock_recs is not None else [stock()],
        list(status_recs),
        list(payments),
        list(timeouts),
        list(dlq),
    )
    return build_report(records, LedgerReading(ledger) if ledger is not None else None, orders)


# --- outcomes ---------------------------------------------------------------------------------


def test_a_redelivered_outcome_is_counted_but_is_one_outcome() -> None:
    # Given the same OrderConfirmed (same event id) twice, as a re-send after a crash does
    r = report(status_recs=[status("o1", "CONFIRMED"), status("o1", "CONFIRMED")])
    # Then it is one outcome, and the duplicate shows as a figure
    assert r.outcomes["o1"] == {"CONFIRMED": 2}
    assert r.status_of("o1") == "CONFIRMED"
    assert r.redelivered_outcomes == 1
    assert invariant_violations(r, ["o1"]) == []
    assert figures(r).terminal_records == 2


def test_a_second_distinct_terminal_event_is_a_violation() -> None:
    r = report(
        status_recs=[status("o1", "CONFIRMED"), status("o1", "CONFIRMED", event="another-id")],
        stock_recs=[],
    )

    assert r.status_of("o1") == "CONFIRMED"
    assert invariant_violations(r, ["o1"]) == [
        "order o1 has 2 distinct terminal events ['CONFIRMED'] (a second outcome, not a redelivery)"
    ]


def test_conflicting_and_missing_outcomes_are_violations() -> None:
    r = report(status_recs=[status("o1", "CONFIRMED"), status("o1", "CANCELLED")])

    assert r.status_of("o1") is None
    assert invariant_violations(r, ["o1", "o2"]) == [
        "order o1 has terminal states ['CANCELLED', 'CONFIRMED']",
        "order o2 has terminal states none",
    ]


def test_only_the_wanted_orders_are_reported() -> None:
    r = report(status_recs=[status("o1", "CONFIRMED"), status("other", "REJECTED")], orders=["o1"])

    assert set(r.outcomes) == {"o1"}


# --- charges on payment-events ----------------------------------------------------------------


def test_charges_are_counted_per_charge_id() -> None:
    # Given a payment record redelivered (same charge) and one order charged under two ids
    r = report(
        status_recs=[status("o1", "CONFIRMED"), status("o2", "CONFIRMED")],
        payments=[paid("o1"), paid("o1"), paid("o2", "ch_a"), paid("o2", "ch_b")],
        stock_recs=[stock(sold=2, available=8)],
    )
    # Then the redelivery is one charge, the two ids are two
    assert r.charges["o1"] == {"ch_o1": 2} and r.payment_records == 4
    assert invariant_violations(r, ["o1", "o2"]) == ["order o2 charged 2 times"]


def test_a_charge_for_an_order_not_confirmed_or_also_failed_is_a_violation() -> None:
    r = report(
        status_recs=[status("o1", "CANCELLED")],
        payments=[paid("o1"), failed("o1")],
        stock_recs=[],
    )

    assert invariant_violations(r, ["o1"]) == [
        "order o1 charged but ['CANCELLED']",
        "order o1 has both PaymentSucceeded and PaymentFailed",
    ]


# --- the gateway's ledger ---------------------------------------------------------------------


def test_a_replay_under_the_same_key_moves_money_once() -> None:
    # Given the worker that charged o1 was killed, and its successor asked again (same key)
    r = report(
        status_recs=[status("o1", "CONFIRMED")],
        payments=[paid("o1")],
        ledger=[call("o1", pid=1), call("o1", pid=2), call("o2", outcome="declined")],
        orders=["o1"],
    )
    # Then money moved once: no violation; the replay is a figure, explained by the crash
    assert invariant_violations(r, ["o1"]) == []
    f = figures(r)
    assert (f.charge_calls, f.replayed_calls, f.orders_with_repeat_calls) == (2, 1, 1)
    assert unexplained_charge_calls(r, crashed_pids={1}) == []
    # But without a crash to explain it, the repeat call is reported
    assert unexplained_charge_calls(r, crashed_pids=set()) == [
        "order o1: approved charge calls by pid 1 then pid 2 (key o1): not killed"
    ]


def test_one_process_charging_twice_is_unexplained_even_if_killed_later() -> None:
    r = report(status_recs=[status("o1", "CONFIRMED")], ledger=[call("o1"), call("o1")])

    assert unexplained_charge_calls(r, crashed_pids={1}) == [
        "order o1: approved charge calls by pid 1 then pid 1 (key o1): one process asked twice"
    ]


def test_money_moved_twice_under_two_keys_is_a_violation() -> None:
    r = report(
        status_recs=[status("o1", "CONFIRMED")],
        payments=[paid("o1")],
        ledger=[call("o1"), call("o1", pid=2, key="o1-retry")],
    )

    assert invariant_violations(r, ["o1"]) == [
        "order o1: money moved 2 times at the gateway (keys ['o1', 'o1-retry'])"
    ]


def test_the_ledger_and_the_outcomes_must_agree() -> None:
    # Given o1 charged at the gateway but cancelled (a worker charged an order another settled
    # as failed), o2 confirmed with no charge at the gateway, o3 with a record the gateway
    # never approved
    outcomes = [status("o1", "CANCELLED"), status("o2", "CONFIRMED"), status("o3", "CONFIRMED")]
    r = report(
        status_recs=outcomes,
        payments=[paid("o2"), paid("o3", "ch_forged")],
        ledger=[call("o1"), call("o3")],
        stock_recs=[],
    )

    assert invariant_violations(r, ["o1", "o2", "o3"]) == [
        "order o1: charged at the gateway but CANCELLED",
        "order o2: CONFIRMED without an approved charge at the gateway",
        "order o2: payment record ch_o2 the gateway never approved",
        "order o3: payment record ch_forged the gateway never approved",
    ]


def test_a_torn_ledger_is_a_violation() -> None:
    records = TopicRecords([], [], [], [], [])

    r = build_report(records, LedgerReading([], torn_lines=2), [])

    assert invariant_violations(r, []) == ["gateway ledger has 2 torn lines"]


# --- stock ------------------------------------------------------------------------------------


def test_an_oversold_shelf_is_reported_not_a_read_error() -> None:
    # Given a changelog value that breaks the model's own rule (available >= 0)
    r = report(stock_recs=[stock(restocked=5, available=-2, sold=7)])

    assert r.stock["P"].available == -2
    assert invariant_violations(r, []) == [
        "stock oversold for P: restocked=5 available=-2 sold=7",
        "stock not conserved for P: restocked=5 available=-2 held=0 sold=7",
        "stock of P sold 7 but the confirmed orders took 0",
    ]


def test_sold_must_equal_what_the_confirmed_orders_took() -> None:
    # Given 3 units sold, but the confirmed outcomes on the log took 2 (once each, though the
    # second outcome was redelivered) and a rejected order's 5 do not count
    outcomes = [
        status("o1", "CONFIRMED"),
        status("o2", "CONFIRMED"),
        status("o2", "CONFIRMED"),
        status("o3", "REJECTED", items=[{"productId": "P", "quantity": 5}]),
    ]
    r = report(status_recs=outcomes, stock_recs=[stock(restocked=10, available=7, sold=3)])

    assert r.sold_by_outcomes == {"P": 2}
    assert invariant_violations(r, ["o1", "o2", "o3"]) == [
        "stock of P sold 3 but the confirmed orders took 2"
    ]


def test_sold_is_not_compared_while_holds_are_open_or_the_log_is_not_whole() -> None:
    held = stock(restocked=10, available=6, held=1, sold=3, holds={"o9": 1})
    # (commits may still be in flight)
    assert (
        invariant_violations(
            report(status_recs=[status("o1", "CONFIRMED")], stock_recs=[held]), ["o1"]
        )
        == []
    )
    # (retention removed the start of the log: the first offset is not 0)
    late = Rec(status("o1", "CONFIRMED").value, offset=5)
    r = report(status_recs=[late], stock_recs=[stock(restocked=10, available=7, sold=3)])
    assert r.sold_by_outcomes is None
    assert invariant_violations(r, ["o1"]) == []


def test_a_hold_outliving_its_settled_order_is_a_leak() -> None:
    # Given o1 rejected but still holding 2 units, and o2 still open (its hold is in use)
    shelf = stock(restocked=10, available=6, held=3, sold=1, holds={"o1": 2, "o2": 1})
    r = report(status_recs=[status("o1", "REJECTED")], stock_recs=[shelf])

    assert leaked_holds(r, ["o1", "o2"]) == ["order o1 ['REJECTED'] still holds 2 of P"]


# --- deadlines and dead letters ---------------------------------------------------------------


def test_redrives_by_deadline_are_told_apart_from_first_time_settles() -> None:
    r = report(
        status_recs=[
            status("o1", "CONFIRMED", at=100),
            status("o2", "CONFIRMED", at=100),
            status("o3", "REJECTED", at=300, reason="timeout: inventory did not answer"),
        ],
        timeouts=[timed_out("o1", at=50), timed_out("o2", at=150), timed_out("o3", at=200)],
    )

    assert r.redriven() == {"o1", "o3"}  # o2's deadline fired after it had settled
    assert r.settled_by_deadline() == {"o3"}
    f = figures(r)
    assert (f.settled, f.settled_first_time, f.redriven, f.settled_by_deadline) == (3, 1, 2, 1)


def test_dead_letters_are_counted_by_kind() -> None:
    def letter(kind: str) -> Rec:
        return Rec(b"x", headers=(("x-dlq-kind", kind.encode()), ("x-dlq-message", b"why")))

    r = report(dlq=[letter("out_of_order"), letter("out_of_order"), letter("undecodable")])

    assert r.dead_letters == 3
    assert r.dead_letter_kinds == {"out_of_order": 2, "undecodable": 1}
    assert r.dead_letter_samples == {"out_of_order": "why", "undecodable": "why"}
    assert "dead letters 3 (out_of_order 2, undecodable 1)" in figures(r).line()

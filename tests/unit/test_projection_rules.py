"""Read-model rules, Given / When / Then: order summaries, customer histories and hourly sales per
product; idempotent under redelivery and independent of how partitions interleave."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import projections
from app.domain.common import RuleViolation
from app.domain.projections import (
    HISTORY_LIMIT,
    SALES_RETENTION_H,
    CustomerOrders,
    Origin,
    ProductSales,
    record_order,
    record_sale,
    summarize,
)
from app.errors import EventError
from app.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderItem,
    OrderOutcome,
    StatusEvent,
    event_id,
)
from app.replay import ReadModels

T = datetime(2026, 11, 26, 10, 15, tzinfo=UTC)


def outcome(
    order: str = "o-1",
    customer: str = "c-1",
    status: str = "CONFIRMED",
    items: tuple[tuple[str, int, float], ...] = (("p-1", 2, 10.0), ("p-2", 1, 5.5)),
    at: datetime = T,
    placed: datetime = T - timedelta(seconds=3),
) -> StatusEvent:
    cls = OrderConfirmed if status == "CONFIRMED" else OrderCancelled
    return cls(
        eventId=event_id(cls.__name__, order),
        timestamp=at,
        data=OrderOutcome(
            orderId=order,
            customerId=customer,
            status=status,  # type: ignore[arg-type]
            totalAmount=sum(q * p for _, q, p in items),
            placedAt=placed,
            items=[OrderItem(productId=s, quantity=q, price=p) for s, q, p in items],
        ),
    )


def at(partition: int, offset: int) -> Origin:
    return Origin(partition=partition, offset=offset)


# --- summaries -------------------------------------------------------------------------------


def test_summary_keeps_money_in_cents_and_only_confirmed_lines_sell() -> None:
    s = summarize(outcome(), at(0, 7))

    assert (s.totalCents, s.settledAt, s.origin) == (2550, T, at(0, 7))
    assert [(ln.productId, ln.quantity, ln.priceCents) for ln in s.sold()] == [
        ("p-1", 2, 1000),
        ("p-2", 1, 550),
    ]
    assert summarize(outcome(status="CANCELLED"), at(0, 8)).sold() == []


def test_origin_travels_in_a_header() -> None:
    assert Origin.from_headers({"x-origin": at(3, 1234).header()}) == at(3, 1234)
    with pytest.raises(EventError, match="x-origin"):
        Origin.from_headers({"x-origin": b"3-x"})
    with pytest.raises(EventError):
        Origin.from_headers(None)


# --- customer history ------------------------------------------------------------------------


def test_first_order_starts_a_history_with_totals() -> None:
    decision = record_order(None, summarize(outcome(), at(1, 5)))

    h = decision.state
    assert h is not None and not decision.duplicate
    assert [o.orderId for o in h.recent] == ["o-1"]
    assert (h.placed, h.confirmed, h.spentCents, h.applied) == (1, 1, 2550, {"p1": 5})


def test_cancelled_order_is_listed_but_not_spent() -> None:
    h = record_order(None, summarize(outcome(status="CANCELLED"), at(1, 5))).state

    assert h is not None and (h.placed, h.confirmed, h.spentCents) == (1, 0, 0)


def test_redelivered_outcome_changes_nothing() -> None:
    s = summarize(outcome(), at(1, 5))
    once = record_order(None, s).state

    again = record_order(once, s)

    assert again.duplicate and again.state is None


def test_same_order_from_another_origin_is_not_counted_twice() -> None:
    once = record_order(None, summarize(outcome(), at(1, 5))).state

    again = record_order(once, summarize(outcome(), at(2, 9)))

    assert again.duplicate and again.state is not None
    assert (again.state.placed, again.state.applied) == (1, {"p1": 5, "p2": 9})


def test_history_lists_the_newest_orders_and_counts_all() -> None:
    h: CustomerOrders | None = None
    for n in range(HISTORY_LIMIT + 5):
        placed = T + timedelta(minutes=n)
        h = record_order(h, summarize(outcome(f"o-{n}", placed=placed), at(0, n))).state
    assert h is not None
    assert len(h.recent) == HISTORY_LIMIT and h.placed == HISTORY_LIMIT + 5
    assert h.recent[0].orderId == f"o-{HISTORY_LIMIT + 4}" and h.recent[-1].orderId == "o-5"


def full_history() -> CustomerOrders:
    """A customer with HISTORY_LIMIT orders, o-0 placed first."""
    h: CustomerOrders | None = None
    for n in range(HISTORY_LIMIT):
        h = record_order(
            h, summarize(outcome(f"o-{n}", placed=T + timedelta(minutes=n)), at(0, n))
        ).state
    assert h is not None
    return h


def test_a_newly_listed_order_stores_its_summary_and_evicts_the_oldest() -> None:
    h = full_history()
    newest = summarize(outcome("o-new", placed=T + timedelta(days=1)), at(0, 500))

    after = record_order(h, newest).state
    assert after is not None

    assert projections.relisted(h, after, newest) == (newest, ["o-0"])


def test_an_order_older_than_the_listed_ones_is_counted_not_listed() -> None:
    h = full_history()
    oldest = summarize(outcome("o-old", placed=T - timedelta(days=1)), at(0, 500))

    after = record_order(h, oldest).state
    assert after is not None and after.placed == HISTORY_LIMIT + 1

    assert projections.relisted(h, after, oldest) == (None, [])


def test_a_repeat_from_another_origin_lists_nothing_new() -> None:
    s = summarize(outcome(), at(1, 5))
    once = record_order(None, s).state
    assert once is not None and projections.relisted(None, once, s) == (s, [])

    again = record_order(once, summarize(outcome(), at(2, 9))).state
    assert again is not None

    assert projections.relisted(once, again, s) == (None, [])


# --- sales per product per hour --------------------------------------------------------------


def test_sale_lands_in_the_hour_it_was_confirmed() -> None:
    s = summarize(outcome(), at(0, 1))

    sales = record_sale(None, s, "p-1").state

    assert sales is not None
    assert [(b.hour, b.units, b.revenueCents, b.orders) for b in sales.hours] == [
        (datetime(2026, 11, 26, 10, tzinfo=UTC), 2, 2000, 1)
    ]


def test_sales_of_one_hour_add_up_and_the_next_hour_opens_a_window() -> None:
    sales: ProductSales | None = None
    for n, when in enumerate([T, T + timedelta(minutes=30), T + timedelta(hours=1)]):
        sales = record_sale(sales, summarize(outcome(f"o-{n}", at=when), at(0, n)), "p-2").state
    assert sales is not None
    assert [(b.hour.hour, b.units, b.orders) for b in sales.hours] == [(10, 2, 2), (11, 1, 1)]


def test_redelivered_sale_is_counted_once() -> None:
    s = summarize(outcome(), at(2, 40))
    once = record_sale(None, s, "p-1").state

    again = record_sale(once, s, "p-1")

    assert again.duplicate and again.state is None


def test_windows_older_than_the_retention_are_dropped_and_not_reopened() -> None:
    old = summarize(outcome("o-old", at=T), at(0, 1))
    new = summarize(outcome("o-new", at=T + timedelta(hours=SALES_RETENTION_H)), at(0, 2))
    late = summarize(outcome("o-late", at=T + timedelta(minutes=1)), at(1, 1))

    sales = record_sale(record_sale(None, old, "p-1").state, new, "p-1").state
    after_late = record_sale(sales, late, "p-1").state

    assert sales is not None and after_late is not None
    assert [b.units for b in sales.hours] == [2]
    assert after_late.hours == sales.hours and after_late.applied == {"p0": 2, "p1": 1}


def test_sale_for_a_product_the_order_did_not_sell_is_refused() -> None:
    with pytest.raises(RuleViolation, match="sold no p-9"):
        record_sale(None, summarize(outcome(), at(0, 1)), "p-9")


# --- views -----------------------------------------------------------------------------------


def test_sales_view_fills_the_hours_without_sales() -> None:
    sales = record_sale(None, summarize(outcome(), at(0, 1)), "p-1").state
    assert sales is not None

    view = projections.sales_view(sales, T + timedelta(hours=2), hours=3)

    assert [(h["hour"][11:13], h["units"]) for h in view["hours"]] == [
        ("12", 0),
        ("11", 0),
        ("10", 2),
    ]
    assert view["total"] == {"units": 2, "revenue": 20.0, "orders": 1}


def test_customer_view_shows_amounts_in_currency_units() -> None:
    s = summarize(outcome(), at(0, 1))
    h = record_order(None, s).state
    assert h is not None

    view = projections.customer_view(h, {s.orderId: s}.get, limit=5)

    assert view["totals"] == {"orders": 1, "confirmed": 1, "spent": 25.5}
    assert view["orders"][0]["items"][1] == {"productId": "p-2", "quantity": 1, "price": 5.5}


# --- any interleaving of partitions gives the same read models --------------------------------


def partition_logs(seed: int, orders: int) -> list[list[tuple[StatusEvent, Origin]]]:
    """Outcomes spread over 3 order-status partitions, some announced twice by the saga."""
    rng = random.Random(seed)
    logs: list[list[tuple[StatusEvent, Origin]]] = [[], [], []]
    for n in range(orders):
        p = rng.randrange(3)
        items = tuple(
            (sku, rng.randint(1, 3), rng.choice([1.99, 10.0, 0.1]))
            for sku in rng.sample(["a", "b", "c", "d"], rng.randint(1, 3))
        )
        ev = outcome(
            f"o-{n}",
            customer=rng.choice(["c-1", "c-2"]),
            status=rng.choice(["CONFIRMED", "CONFIRMED", "CANCELLED"]),
            items=items,
            at=T + timedelta(minutes=rng.randint(0, 300)),
        )
        for _ in range(rng.choice([1, 1, 2])):
            logs[p].append((ev, at(p, len(logs[p]))))
    return logs


def interleave(logs: list[list[tuple[StatusEvent, Origin]]], seed: int) -> ReadModels:
    """Apply the partitions in a random interleaving (each in its own order), redelivering
    some records as a consumer does after a crash."""
    rng, models = random.Random(seed), ReadModels()
    cursors = [0] * len(logs)
    while any(c < len(log) for c, log in zip(cursors, logs, strict=True)):
        p = rng.choice([i for i, log in enumerate(logs) if cursors[i] < len(log)])
        models.apply(*logs[p][cursors[p]])
        if rng.random() < 0.2:
            models.apply(*logs[p][cursors[p]])
        cursors[p] += 1
    return models


@settings(max_examples=50, deadline=None)
@given(log_seed=st.integers(0, 2**16), a=st.integers(0, 2**16), b=st.integers(0, 2**16))
def test_read_models_do_not_depend_on_partition_interleaving(log_seed: int, a: int, b: int) -> None:
    logs = partition_logs(log_seed, orders=40)

    assert interleave(logs, a).views() == interleave(logs, b).views()

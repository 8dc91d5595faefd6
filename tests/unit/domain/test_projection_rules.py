"""Read-model rules, Given / When / Then: order summaries, customer histories and hourly sales per
product (recorded from the commits that sell); idempotent under redelivery and independent of
how partitions interleave."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderstream.contracts.events import (
    CommitStock,
    OrderCancelled,
    OrderConfirmed,
    OrderItem,
    OrderOutcome,
    StatusEvent,
    StockLine,
    event_id,
)
from orderstream.domain import projections, saga
from orderstream.domain.common import RuleViolation
from orderstream.domain.projections import (
    HISTORY_LIMIT,
    SALES_RETENTION_H,
    CustomerOrders,
    Origin,
    ProductSales,
    record_order,
    record_sale,
    sale_of,
    summarize,
)
from orderstream.domain.state import decode_state
from orderstream.errors import EventError
from orderstream.ops.replay import ReadModels

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


TOPIC = "inventory-requests"  # where commits come from: the sales watermark's key


def commit(
    order: str = "o-1",
    product: str = "p-1",
    quantity: int = 2,
    price: float | None = 10.0,
    when: datetime = T,
) -> CommitStock:
    """The saga's commit of an order's line (what `outcome`'s items would commit)."""
    return CommitStock(
        eventId=event_id("CommitStock", order, product),
        timestamp=when,
        data=StockLine(orderId=order, productId=product, quantity=quantity, price=price),
    )


def commits(ev: StatusEvent) -> list[CommitStock]:
    """The commits the saga sends for an outcome: one per line of a confirmed order."""
    if ev.data.status != "CONFIRMED":
        return []
    return [
        commit(ev.data.orderId, i.productId, i.quantity, i.price, ev.timestamp)
        for i in ev.data.items
    ]


# --- summaries -------------------------------------------------------------------------------


def test_summary_keeps_money_in_cents() -> None:
    s = summarize(outcome(), at(0, 7))

    assert (s.totalCents, s.settledAt, s.origin) == (2550, T, at(0, 7))
    assert [(ln.productId, ln.quantity, ln.priceCents) for ln in s.lines] == [
        ("p-1", 2, 1000),
        ("p-2", 1, 550),
    ]


def test_origin_travels_in_a_header() -> None:
    assert Origin.from_headers({"x-origin": at(3, 1234).header()}) == at(3, 1234)
    step = Origin(source="i", partition=3, offset=1234)
    assert step.header() == b"i3:1234" and Origin.from_headers({"x-origin": b"i3:1234"}) == step
    # an outcome relayed by an earlier version names its order-status partition: "p"
    assert Origin.from_headers({"x-origin": b"3:1234"}).watermark_key == "p3"
    assert step.watermark_key == "i3" != Origin(source="t", partition=3, offset=0).watermark_key
    with pytest.raises(EventError, match="x-origin"):
        Origin.from_headers({"x-origin": b"3-x"})
    with pytest.raises(EventError):
        Origin.from_headers({"x-origin": b"ii3:1"})
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


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 30)),  # (minute placed, order number)
        max_size=HISTORY_LIMIT + 40,
    )
)
def test_the_listed_orders_are_the_newest_by_placed_time_then_id_whatever_the_arrival_order(
    arrivals: list[tuple[int, int]],
) -> None:
    # Given orders settling in any order, some placed in the same minute, some repeated
    h: CustomerOrders | None = None
    placed: dict[str, datetime] = {}
    for offset, (minute, number) in enumerate(arrivals):
        order = f"o-{number}"
        when = placed.setdefault(order, T + timedelta(minutes=minute))
        h = record_order(h, summarize(outcome(order, placed=when), at(0, offset))).state or h
    # then the part lists the newest HISTORY_LIMIT of the distinct orders, newest first
    expected = sorted(((w, o) for o, w in placed.items()), reverse=True)[:HISTORY_LIMIT]
    assert [(r.placedAt, r.orderId) for r in (h.recent if h else [])] == expected


def full_history() -> CustomerOrders:
    """A customer with HISTORY_LIMIT orders, o-0 placed first."""
    h: CustomerOrders | None = None
    for n in range(HISTORY_LIMIT):
        h = record_order(
            h, summarize(outcome(f"o-{n}", placed=T + timedelta(minutes=n)), at(0, n))
        ).state
    assert h is not None
    return h


def test_a_newly_listed_order_pushes_the_oldest_out_with_no_record_of_its_own() -> None:
    h = full_history()
    (oldest,) = [r for r in h.recent if r.orderId == "o-0"]
    newest = summarize(outcome("o-new", placed=T + timedelta(days=1)), at(0, 500))

    after = record_order(h, newest).state
    assert after is not None

    # listed first, its summary its saga state (no slot), the oldest no longer listed
    assert after.recent[0] == projections.OrderRef(orderId="o-new", placedAt=newest.placedAt)
    assert after.recent[0].slot is None
    assert projections.unlisted(h, after) == [oldest]
    assert len(after.recent) == HISTORY_LIMIT


def test_an_order_older_than_the_listed_ones_is_counted_not_listed() -> None:
    h = full_history()
    oldest = summarize(outcome("o-old", placed=T - timedelta(days=1)), at(0, 500))

    after = record_order(h, oldest).state
    assert after is not None and after.placed == HISTORY_LIMIT + 1

    assert after.recent == h.recent
    assert projections.unlisted(h, after) == []


def test_a_repeat_from_another_origin_lists_nothing_new() -> None:
    s = summarize(outcome(), at(1, 5))
    once = record_order(None, s).state
    assert once is not None and [r.orderId for r in once.recent] == [s.orderId]

    again = record_order(once, summarize(outcome(), at(2, 9))).state
    assert again is not None

    assert (again.recent, again.placed) == (once.recent, 1)


def test_a_history_in_parts_shows_the_newest_of_all_and_the_totals_of_all() -> None:
    # Given a customer's orders recorded in two saga partitions, alternately
    models = ReadModels()
    for n in range(HISTORY_LIMIT + 10):
        ev = outcome(
            f"o-{n}", placed=T + timedelta(minutes=n), status=["CONFIRMED", "CANCELLED"][n % 3 == 0]
        )
        models.apply(ev, at(n % 2, n), n % 2)
    assert sorted(models.customers) == ["c-1#0", "c-1#1"]

    # When the parts are merged
    view = models.views()["customer_orders"]["c-1"]

    # Then the newest orders of all are listed, newest placed first, and every order counted
    newest = [f"o-{n}" for n in reversed(range(10, HISTORY_LIMIT + 10))]
    assert [o["orderId"] for o in view["orders"]] == newest
    assert view["listed"] == newest
    confirmed = [n for n in range(HISTORY_LIMIT + 10) if n % 3 != 0]
    assert view["totals"] == {
        "orders": HISTORY_LIMIT + 10,
        "confirmed": len(confirmed),
        "spent": len(confirmed) * 25.5,
    }
    # And a limit cuts the merged list, not each part's
    parts = [
        projections.customer_view(h, key, 5, models.listed.get, models.settled.get)
        for key, h in models.customers.items()
    ]
    merged = projections.merge_views("c-1", parts, 5)
    assert [o["orderId"] for o in merged["orders"]] == newest[:5]


@pytest.mark.parametrize("seed", range(5))
def test_a_long_history_shows_the_newest_orders_from_at_most_its_limit_of_records(
    seed: int,
) -> None:
    # Given orders settling in any order of their placing, some announced twice
    rng = random.Random(seed)
    placed = [T + timedelta(minutes=n) for n in range(3 * HISTORY_LIMIT)]
    rng.shuffle(placed)
    models = ReadModels()
    for n, when in enumerate(placed):
        ev = outcome(f"o-{n}", placed=when)
        for _ in range(rng.choice([1, 1, 2])):
            models.apply(ev, at(0, n), 0)

    # Then the view lists the newest placed, each with its own summary
    view = models.views()["customer_orders"]["c-1"]
    newest = sorted(range(len(placed)), key=lambda n: placed[n], reverse=True)[:HISTORY_LIMIT]
    assert [o["orderId"] for o in view["orders"]] == [f"o-{n}" for n in newest]
    assert [o["placedAt"] for o in view["orders"]] == [placed[n].isoformat() for n in newest]
    # And the rebuild keeps one summary per listed order: none left behind
    h = models.customers["c-1#0"]
    assert sorted(models.settled) == sorted(r.orderId for r in h.recent)
    assert len(models.settled) == HISTORY_LIMIT


# --- sales per product per hour --------------------------------------------------------------


def sold(c: CommitStock, offset: int, sales: ProductSales | None = None) -> ProductSales:
    """The sales after the commit at `offset` sold its hold."""
    after = record_sale(sales, sale_of(c), TOPIC, offset).state
    assert after is not None
    return after


def test_sale_lands_in_the_hour_it_was_committed() -> None:
    sales = sold(commit(), 1)

    assert [(b.hour, b.units, b.revenueCents, b.orders) for b in sales.hours] == [
        (datetime(2026, 11, 26, 10, tzinfo=UTC), 2, 2000, 1)
    ]
    assert (sales.productId, sales.applied) == ("p-1", {TOPIC: 1})


def test_sales_of_one_hour_add_up_and_the_next_hour_opens_a_window() -> None:
    sales: ProductSales | None = None
    for n, when in enumerate([T, T + timedelta(minutes=30), T + timedelta(hours=1)]):
        sales = sold(commit(f"o-{n}", "p-2", 1, 5.5, when), n, sales)
    assert sales is not None
    assert [(b.hour.hour, b.units, b.orders) for b in sales.hours] == [(10, 2, 2), (11, 1, 1)]


def test_a_commit_without_a_price_counts_units_and_the_order_not_revenue() -> None:
    sales = sold(commit(price=None), 1)

    assert [(b.units, b.revenueCents, b.orders) for b in sales.hours] == [(2, 0, 1)]


def test_redelivered_commit_is_counted_once() -> None:
    once = sold(commit(), 40)

    again = record_sale(once, sale_of(commit()), TOPIC, 40)
    earlier = record_sale(once, sale_of(commit("o-2")), TOPIC, 39)

    assert again.duplicate and again.state is None
    assert earlier.duplicate and earlier.state is None


def test_windows_older_than_the_retention_are_dropped_and_not_reopened() -> None:
    old = commit("o-old", when=T)
    new = commit("o-new", when=T + timedelta(hours=SALES_RETENTION_H))
    late = commit("o-late", when=T + timedelta(minutes=1))

    sales = sold(new, 2, sold(old, 1))
    after_late = sold(late, 3, sales)

    assert [b.units for b in sales.hours] == [2]
    assert after_late.hours == sales.hours and after_late.applied == {TOPIC: 3}


def test_sale_of_another_product_is_refused() -> None:
    with pytest.raises(RuleViolation, match="a sale of p-9 for p-1"):
        record_sale(sold(commit(), 1), sale_of(commit(product="p-9")), TOPIC, 2)


# --- views -----------------------------------------------------------------------------------


def test_sales_view_fills_the_hours_without_sales() -> None:
    sales = sold(commit(), 1)

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

    part = projections.customer_view(h, "c-1#0", 5, {}.get, {s.orderId: s}.get)
    view = projections.merge_views("c-1", [part], 5)

    assert view["totals"] == {"orders": 1, "confirmed": 1, "spent": 25.5}
    assert view["orders"][0]["items"][1] == {"productId": "p-2", "quantity": 1, "price": 5.5}


def test_a_settled_order_s_state_shows_what_its_outcome_said() -> None:
    """A part lists an order; its summary is the order's settled saga state, not a record of
    its own: what a reader sees must be what the outcome (the replay's source) said."""
    from tests.unit.domain.test_saga_rules import paid, paying

    state = saga.decide(paying(), paid(), 1_000.0, 30.0)
    assert state.state is not None
    (confirmed,) = [e for e in state.emit if e.eventType == "OrderConfirmed"]

    from_state = projections.summary_of_state(state.state)
    from_outcome = summarize(confirmed, at(0, 1))  # type: ignore[arg-type]

    assert from_state is not None
    assert projections.summary_view(from_state) == projections.summary_view(from_outcome)
    assert projections.summary_of_state(paying()) is None  # not settled: not shown
    assert projections.summary_of_state(None) is None


def test_a_part_from_before_reads_its_slots_and_its_new_orders_from_their_states() -> None:
    # Given a part that listed o-1 in slot 0 (a summary record), and then o-2 (no slot)
    old, new = (summarize(outcome(o, placed=T + timedelta(minutes=n)), at(0, n))
                for n, o in enumerate(("o-1", "o-2")))  # fmt: skip
    part = CustomerOrders(
        customerId="c-1",
        recent=[projections.OrderRef(orderId="o-1", placedAt=old.placedAt, slot=0)],
    )
    part = record_order(part, new).state
    assert part is not None
    records, settled = {"c-1#0/0": old}, {"o-2": new, "o-1": None}

    view = projections.customer_view(part, "c-1#0", 10, records.get, settled.get)

    # Then both are shown, each from where it is
    assert [o["orderId"] for o in view["orders"]] == ["o-2", "o-1"]
    # And a slot written over by another order (a crash between it and its part) is not shown
    records["c-1#0/0"] = new
    view = projections.customer_view(part, "c-1#0", 10, records.get, settled.get)
    assert [o["orderId"] for o in view["orders"]] == ["o-2"]


# --- any interleaving of partitions gives the same read models --------------------------------


Log = list[tuple[StatusEvent | CommitStock, int]]  # (record, offset) of one partition
SKUS = ("a", "b", "c", "d")


def partition_logs(seed: int, orders: int) -> list[Log]:
    """Outcomes spread over 3 order-status partitions, some announced twice by the saga, and the
    commits of the confirmed ones over 3 inventory-requests partitions by product, some re-sent
    by the saga (a later record of the same commit)."""
    rng = random.Random(seed)
    logs: list[Log] = [[] for _ in range(6)]
    for n in range(orders):
        p = rng.randrange(3)
        items = tuple(
            (sku, rng.randint(1, 3), rng.choice([1.99, 10.0, 0.1]))
            for sku in rng.sample(SKUS, rng.randint(1, 3))
        )
        ev = outcome(
            f"o-{n}",
            customer=rng.choice(["c-1", "c-2"]),
            status=rng.choice(["CONFIRMED", "CONFIRMED", "CANCELLED"]),
            items=items,
            at=T + timedelta(minutes=rng.randint(0, 300)),
        )
        for _ in range(rng.choice([1, 1, 2])):
            logs[p].append((ev, len(logs[p])))
        for c in commits(ev):
            q = 3 + SKUS.index(c.data.productId) % 3
            for _ in range(rng.choice([1, 1, 2])):
                logs[q].append((c, len(logs[q])))
    return logs


def interleave(logs: list[Log], seed: int) -> ReadModels:
    """Apply the partitions in a random interleaving (each in its own order), redelivering
    some records as a consumer does after a crash."""
    rng, models = random.Random(seed), ReadModels()

    def apply(record: StatusEvent | CommitStock, offset: int, p: int) -> None:
        if isinstance(record, CommitStock):
            models.apply_commits([record], TOPIC, offset)
        else:
            models.apply(record, at(p, offset), p)

    cursors = [0] * len(logs)
    while any(c < len(log) for c, log in zip(cursors, logs, strict=True)):
        p = rng.choice([i for i, log in enumerate(logs) if cursors[i] < len(log)])
        apply(*logs[p][cursors[p]], p)
        if rng.random() < 0.2:
            apply(*logs[p][cursors[p]], p)
        cursors[p] += 1
    return models


@settings(max_examples=50, deadline=None)
@given(log_seed=st.integers(0, 2**16), a=st.integers(0, 2**16), b=st.integers(0, 2**16))
def test_read_models_do_not_depend_on_partition_interleaving(log_seed: int, a: int, b: int) -> None:
    logs = partition_logs(log_seed, orders=40)

    one = interleave(logs, a)

    assert one.views() == interleave(logs, b).views()
    confirmed = [ev for log in logs[:3] for ev, _ in log if ev.eventType == "OrderConfirmed"]
    units = sum(
        i.quantity for ev in {e.eventId: e for e in confirmed}.values() for i in ev.data.items
    )
    assert sum(h.units for s in one.sales.values() for h in s.hours) == units


@pytest.mark.parametrize("seed", range(3))
def test_histories_past_their_limit_do_not_depend_on_partition_interleaving(seed: int) -> None:
    logs = partition_logs(seed, orders=3 * HISTORY_LIMIT)  # two customers: ~150 orders each

    one, two = interleave(logs, seed), interleave(logs, seed + 100)

    assert one.views()["customer_orders"] == two.views()["customer_orders"]
    assert all(len(v["orders"]) == HISTORY_LIMIT for v in one.views()["customer_orders"].values())


def test_a_history_recorded_before_the_parts_is_shown_with_them() -> None:
    # Given a history recorded by customer by an earlier version (summaries keyed by order)
    old = summarize(outcome("o-old", placed=T - timedelta(days=1)), at(0, 1))
    legacy = decode_state(
        orjson.dumps(
            {
                "customerId": "c-1",
                "recent": [{"orderId": "o-old", "placedAt": old.placedAt.isoformat()}],
                "placed": 1,
                "confirmed": 1,
                "spentCents": 2550,
                "applied": {"p0": 1},
            }
        ),
        CustomerOrders,
    )
    stored = {"c-1/o-old": old}
    # and a part recorded by the saga since (its summary: the order's saga state)
    new = summarize(outcome("o-new"), at(3, 7))
    part = record_order(None, new).state
    assert part is not None
    settled = {"o-new": new}

    # When both are merged
    views = [
        projections.customer_view(legacy, "c-1", 10, stored.get, settled.get),
        projections.customer_view(part, "c-1#3", 10, stored.get, settled.get),
    ]
    view = projections.merge_views("c-1", views, 10)

    # Then the customer sees every order and the totals of both
    assert [o["orderId"] for o in view["orders"]] == ["o-new", "o-old"]
    assert view["totals"] == {"orders": 2, "confirmed": 2, "spent": 51.0}

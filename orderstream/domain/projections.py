"""Read models (CQRS), apart from the saga's own state: a customer's order history, recorded by
the saga from the outcomes it announces, and sales per product per hour (tumbling windows),
recorded by the inventory when a commit sells an order's hold.

The same rules serve the live agents and `orderstream replay`, so a rebuild from the log gives
the same state. Each outcome is identified by its origin, the saga input record whose step
announced it (`Origin`); a sale by the inventory-requests topic and offset of the commit that
made it. The read models keep watermarks per source partition (sales: per topic, a product
lives in one partition), so a re-sent record is applied once. Every rule is commutative across
partitions (sums, top-N by a total order, event time), so any interleaving of partitions, live
or replayed, ends in the same state.

A customer's history is kept in parts, one per saga partition (`history_key`): the saga records
an outcome in the partition of the step that announced it, with no Kafka record in between. A
reader merges the parts (`merge_views`): the totals add up, and the newest orders of all are
among the newest of each part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from orderstream.contracts.events import CommitStock, StatusEvent
from orderstream.domain.common import Decision, RuleViolation, already_applied, stamp
from orderstream.domain.saga import OrderState, outcome_event
from orderstream.domain.state import State, replace
from orderstream.errors import EventError

HISTORY_LIMIT = 100  # orders listed per customer: the newest by placedAt (the totals count all)
SALES_RETENTION_H = 7 * 24  # hourly buckets kept per product, back from its newest sale
ORIGIN_HEADER = "x-origin"  # "<source><partition>:<offset>" of the step's record (Origin)
HOUR = timedelta(hours=1)


class Origin(State, frozen=True, kw_only=True):
    """The record whose saga step announced an outcome: its identity for deduplication. The
    saga processes each input partition in offset order and sends the outcomes of one step
    together, so per source partition the outcomes reach a customer's partition in the order
    of their origins, and one at or below the watermark was applied already.

    `source`: the saga input topic's code (`SOURCES`); "p" is an order-status partition, what
    outcomes relayed by the order summaries agent of earlier versions carry."""

    partition: int
    offset: int
    source: str = "p"

    def header(self) -> bytes:
        return f"{self.source}{self.partition}:{self.offset}".encode()

    @classmethod
    def from_headers(cls, headers: dict[str, bytes] | None) -> Origin:
        raw = (headers or {}).get(ORIGIN_HEADER, b"")
        where, _, offset = raw.decode("ascii", "replace").partition(":")
        source, partition = (where[:1], where[1:]) if where[:1].islower() else ("p", where)
        if not (partition.isdigit() and offset.isdigit()):
            raise EventError("validation", f"header {ORIGIN_HEADER} is {raw!r}, not [S]P:OFFSET")
        return cls(partition=int(partition), offset=int(offset), source=source)

    @property
    def watermark_key(self) -> str:
        return f"{self.source}{self.partition}"


#: The code of each saga input topic in an origin (by topic role).
SOURCES = {"orders": "o", "inventory_events": "i", "payment_events": "y", "saga_timeouts": "t"}


class SummaryLine(State, frozen=True, kw_only=True):
    productId: str
    quantity: int
    priceCents: int


class OrderSummary(State, frozen=True, kw_only=True):
    """An order as its customer sees it once settled: the first outcome announced for it, or
    its settled saga state (`summary_of_state`: no origin)."""

    orderId: str
    customerId: str
    status: str
    reason: str | None = None
    totalCents: int
    placedAt: datetime
    settledAt: datetime
    lines: list[SummaryLine]
    eventId: str
    origin: Origin | None = None


class OrderRef(State, frozen=True, kw_only=True):
    orderId: str
    placedAt: datetime
    #: Where the order's summary is (`find_summary`). None: in a part, the order's settled saga
    #: state, in the same partition; in a history recorded by customer before the parts, a
    #: record keyed by order. A number: one of the part's HISTORY_LIMIT summary records (slots),
    #: where a part listed its orders before they were read from their states.
    slot: int | None = None


class CustomerOrders(State, frozen=True, kw_only=True):
    """One part of a customer's history (`history_key`): its totals and which orders it lists,
    newest placed first. A listed order's summary is its settled saga state, kept in the same
    partition (the orders table, `summary_of_state`): the part is the one record written per
    order, and stays small however many orders the customer has (with the summaries inline it
    was ~30 KB at the limit, parsed, re-encoded and sent to the changelog once per order; in
    records of their own, one per slot, it was a second changelog record per order)."""

    customerId: str
    recent: list[OrderRef] = []  # newest placed first
    placed: int = 0
    confirmed: int = 0
    spentCents: int = 0
    applied: dict[str, int] = {}

    def lists(self, order_id: str) -> bool:
        return any(r.orderId == order_id for r in self.recent)


class HourSales(State, frozen=True, kw_only=True):
    hour: datetime  # start of the hour (UTC)
    units: int = 0
    revenueCents: int = 0
    orders: int = 0


class ProductSales(State, frozen=True, kw_only=True):
    productId: str
    hours: list[HourSales] = []  # oldest first
    applied: dict[str, int] = {}


class Sale(State, frozen=True, kw_only=True):
    """An order line sold: what a commit that sold the order's hold adds to the product's sales."""

    productId: str
    quantity: int
    priceCents: int
    at: datetime  # the commit's timestamp: the hour the sale counts in


def cents(amount: float) -> int:
    """Money as integer cents: sums stay exact whatever order the additions come in."""
    return round(amount * 100)


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour of `at` (a time without zone is taken as UTC)."""
    utc = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


# --- rules -----------------------------------------------------------------------------------


def summarize(outcome: StatusEvent, origin: Origin | None) -> OrderSummary:
    d = outcome.data
    return OrderSummary(
        orderId=d.orderId,
        customerId=d.customerId,
        status=d.status,
        reason=d.reason,
        totalCents=cents(d.totalAmount),
        placedAt=d.placedAt,
        settledAt=outcome.timestamp,
        lines=[
            SummaryLine(productId=i.productId, quantity=i.quantity, priceCents=cents(i.price))
            for i in d.items
        ],
        eventId=outcome.eventId,
        origin=origin,
    )


def record_order(history: CustomerOrders | None, s: OrderSummary) -> Decision[CustomerOrders]:
    """Add a settled order to its customer's history (its summary: its saga state)."""
    origin = s.origin
    if origin is None:
        raise RuleViolation("validation", f"the outcome of {s.orderId} has no origin")
    key = origin.watermark_key
    if history is not None and already_applied(history.applied, key, origin.offset):
        return Decision(duplicate=True)
    history = history or CustomerOrders(customerId=s.customerId)
    if history.lists(s.orderId):
        return Decision(stamp(history, key, origin.offset), duplicate=True)
    ref = OrderRef(orderId=s.orderId, placedAt=s.placedAt)
    # `recent` is newest first by (placedAt, orderId): the new order goes before the first one
    # older than it (a settled order is mostly the newest: a look at one or two), not a sort.
    at = (ref.placedAt, ref.orderId)
    recent = history.recent
    i = next((n for n, r in enumerate(recent) if (r.placedAt, r.orderId) < at), len(recent))
    kept = [*recent[:i], ref, *recent[i:]][:HISTORY_LIMIT]
    confirmed = s.status == "CONFIRMED"
    new = replace(
        history,
        recent=kept,
        placed=history.placed + 1,
        confirmed=history.confirmed + int(confirmed),
        spentCents=history.spentCents + (s.totalCents if confirmed else 0),
    )
    return Decision(stamp(new, key, origin.offset))


def history_key(customer_id: str, partition: int) -> str:
    """The key of a customer's history part kept in a saga partition ('#' is in no id)."""
    return f"{customer_id}#{partition}"


def listed_key(history_key: str, ref: OrderRef) -> str:
    """The key of a listed order's summary record: its part's key and its slot ('/' is in no
    id); in a history recorded before the parts, its customer and order."""
    return f"{history_key}/{ref.orderId if ref.slot is None else ref.slot}"


def find_summary(
    key: str,
    ref: OrderRef,
    records: Callable[[str], OrderSummary | None],
    settled: Callable[[str], OrderSummary | None],
) -> OrderSummary | None:
    """The summary of an order listed by the history stored under `key`: from `settled(orderId)`
    (its settled saga state) for a part's order without a slot, else from `records(key)` (a
    summary record: a slot, or a history recorded by customer before the parts). None: not
    found (a slot written over but its part not yet, after a crash between: not shown)."""
    if from_state(key, ref):
        return settled(ref.orderId)
    found = records(listed_key(key, ref))
    return found if found is not None and found.orderId == ref.orderId else None


def from_state(key: str, ref: OrderRef) -> bool:
    """Whether the order listed by the history under `key` is summarised by its saga state: a
    part's (`history_key`) order without a slot."""
    return ref.slot is None and "#" in key


def summary_of_state(state: OrderState | None) -> OrderSummary | None:
    """A settled order's summary from its saga state: what its outcome said, by construction
    (None: not there, or not settled; settled before the state kept `settledAt`: its last
    update taken for it)."""
    if state is None or not state.terminal:
        return None
    if state.settledAt is None:
        state = replace(state, settledAt=state.updatedAt)
    return summarize(outcome_event(state, ""), None)


def unlisted(before: CustomerOrders | None, after: CustomerOrders) -> list[OrderRef]:
    """The orders `before` listed that `after` does not (pushed out by newer ones)."""
    kept = {r.orderId for r in after.recent}
    return [r for r in (before.recent if before is not None else []) if r.orderId not in kept]


def sale_of(cmd: CommitStock) -> Sale:
    """The sale a commit makes when it sells its order's hold. A commit sent before commits
    carried the price counts its units and its order, with revenue 0."""
    line = cmd.data
    price = cents(line.price) if line.price is not None else 0
    return Sale(
        productId=line.productId, quantity=line.quantity, priceCents=price, at=cmd.timestamp
    )


def record_sale(
    sales: ProductSales | None, sale: Sale, topic: str, offset: int
) -> Decision[ProductSales]:
    """`record_sales` of one sold line."""
    return record_sales(sales, [sale], topic, offset)


def record_sales(
    sales: ProductSales | None, sold: Sequence[Sale], topic: str, offset: int
) -> Decision[ProductSales]:
    """Add sold lines of one product to its hours (of each `sale.at`), once: `topic` and
    `offset` name the commit record that sold them (a batch of commits sells several lines of a
    product at one offset), and a record at or below the watermark is dropped.

    Buckets older than SALES_RETENTION_H hours before the newest one are dropped, and a sale
    that old is not added: the result does not depend on the order sales arrive in.
    """
    if sales is not None and already_applied(sales.applied, topic, offset):
        return Decision(duplicate=True)
    if not sold:
        return Decision()
    product = sales.productId if sales is not None else sold[0].productId
    for other in (s.productId for s in sold if s.productId != product):
        raise RuleViolation("validation", f"a sale of {other} for {product}")
    sales = sales or ProductSales(productId=product)
    buckets = {b.hour: b for b in sales.hours}
    for sale in sold:
        hour = hour_of(sale.at)
        was = buckets.get(hour, HourSales(hour=hour))
        buckets[hour] = replace(
            was,
            units=was.units + sale.quantity,
            revenueCents=was.revenueCents + sale.quantity * sale.priceCents,
            orders=was.orders + 1,
        )
    oldest = max(buckets) - (SALES_RETENTION_H - 1) * HOUR
    kept = [b for h, b in sorted(buckets.items()) if h >= oldest]
    return Decision(stamp(replace(sales, hours=kept), topic, offset))


# --- what readers see (the HTTP views and the replay's comparison) ---------------------------


def summary_view(s: OrderSummary) -> dict[str, Any]:
    return {
        "orderId": s.orderId,
        "customerId": s.customerId,
        "status": s.status,
        "reason": s.reason,
        "totalAmount": s.totalCents / 100,
        "placedAt": s.placedAt.isoformat(),
        "settledAt": s.settledAt.isoformat(),
        "items": [
            {"productId": ln.productId, "quantity": ln.quantity, "price": ln.priceCents / 100}
            for ln in s.lines
        ],
    }


def customer_view(
    h: CustomerOrders,
    key: str,
    limit: int,
    records: Callable[[str], OrderSummary | None],
    settled: Callable[[str], OrderSummary | None],
) -> dict[str, Any]:
    """One part of a history (stored under `key`) as readers see it, to merge with the other
    parts (`merge_views`); its orders' summaries found by `find_summary`."""
    found = (find_summary(key, r, records, settled) for r in h.recent[:limit])
    return {
        "orders": [summary_view(s) for s in found if s is not None],
        "listed": [{"orderId": r.orderId, "placedAt": r.placedAt.isoformat()} for r in h.recent],
        "totals": {"orders": h.placed, "confirmed": h.confirmed, "spentCents": h.spentCents},
    }


def merge_views(
    customer_id: str, parts: list[dict[str, Any]], limit: int, *, listed: bool = True
) -> dict[str, Any]:
    """A customer's history from the views of its parts: the newest `limit` orders of all (each
    part gives its newest `limit`) and the totals of all; `listed` (for the replay's
    comparison): the orders listed, newest placed first, up to HISTORY_LIMIT (a listed order
    missing from `orders` has no summary)."""

    def newest(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
        return sorted(rows, key=_placed_order, reverse=True)[:n]

    totals = sum_totals(parts)
    view: dict[str, Any] = {
        "customerId": customer_id,
        "orders": newest([o for p in parts for o in p["orders"]], limit),
        "totals": {
            "orders": totals["orders"],
            "confirmed": totals["confirmed"],
            "spent": totals["spentCents"] / 100,
        },
    }
    if listed:
        rows = newest([r for p in parts for r in p.get("listed", ())], HISTORY_LIMIT)
        view["listed"] = [r["orderId"] for r in rows]
    return view


def sum_totals(parts: list[dict[str, Any]]) -> dict[str, int]:
    """The totals of several parts' views, added up."""
    return {k: sum(p["totals"][k] for p in parts) for k in ("orders", "confirmed", "spentCents")}


def _placed_order(row: dict[str, Any]) -> tuple[datetime, str]:
    return datetime.fromisoformat(row["placedAt"]), row["orderId"]


def sales_view(p: ProductSales, now: datetime, hours: int) -> dict[str, Any]:
    """The last `hours` hours up to `now`, newest first, hours without sales as zeros."""
    by_hour = {b.hour: b for b in p.hours}
    current = hour_of(now)
    rows = [
        by_hour.get(current - n * HOUR, HourSales(hour=current - n * HOUR)) for n in range(hours)
    ]
    return {
        "productId": p.productId,
        "hours": [{"hour": b.hour.isoformat(), **_figures([b])} for b in rows],
        "total": _figures(rows),
    }


def _figures(buckets: list[HourSales]) -> dict[str, Any]:
    return {
        "units": sum(b.units for b in buckets),
        "revenue": sum(b.revenueCents for b in buckets) / 100,
        "orders": sum(b.orders for b in buckets),
    }

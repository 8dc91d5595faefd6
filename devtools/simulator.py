"""Simulated order service: a deterministic mix of orders, each with the outcomes it may reach.

With enough stock every order has exactly one possible outcome. With `stock_ratio` below 1 the
products are restocked with that share of what the orders ask for: which orders get the stock
depends on arrival order, so an order that would be confirmed may instead be rejected out of
stock, and the check is that nothing was oversold (devtools/verify.py)."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field

import orjson

from orderstream.contracts.events import (
    OrderItem,
    OrderPlaced,
    OrderPlacedData,
    StockAdjusted,
    StockAdjustmentData,
    encode,
    utcnow,
)
from orderstream.worker.gateway import attempt_fails

SOLD_OUT = "SOLDOUT-1"  # in the catalog with no stock: orders for it are rejected
UNKNOWN = "GHOST-404"  # never stocked: unknown product
MAX_PRICE = 90.0


@dataclass(frozen=True)
class SimOrder:
    order_id: str
    payload: bytes  # what goes on the order topic (v1 flat or v2 envelope)
    expected: str  # CONFIRMED / REJECTED / CANCELLED, given enough stock
    items: tuple[tuple[str, int], ...]
    # Every outcome the order may reach: {expected}, plus REJECTED when stock runs short.
    allowed: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.allowed:
            object.__setattr__(self, "allowed", frozenset({self.expected}))

    def accepts(self, status: str, reason: str | None) -> bool:
        """Whether ending in `status` for `reason` is right for this order: its expected
        outcome, or (short stock) rejected for want of stock."""
        if status == self.expected:
            return True
        return status in self.allowed and (reason or "").startswith("out_of_stock")


@dataclass
class Scenario:
    """N orders over a catalog; `restocks` gives every in-stock product enough for all of them,
    or `stock_ratio` of what they ask for."""

    orders: list[SimOrder]
    restocks: dict[str, int]
    expected: Counter[str] = field(default_factory=Counter)  # outcomes given enough stock
    stock_ratio: float = 1.0
    demand: Counter[str] = field(default_factory=Counter)  # units asked for, per product

    @property
    def short_stock(self) -> bool:
        return self.stock_ratio < 1.0


def build_scenario(
    run_id: str,
    n_orders: int,
    *,
    products: int = 20,
    seed: int = 7,
    payment_limit: float = 1000.0,
    v1_share: float = 0.1,
    transient_failure_rate: float = 0.0,
    payment_attempts: int = 3,
    stock_ratio: float = 1.0,
) -> Scenario:
    """`stock_ratio` < 1: restock each product with that share of the units ordered (at least
    one), so stock runs short of demand and many orders must be rejected."""
    if not 0.0 < stock_ratio <= 1.0:
        raise ValueError(f"stock_ratio must be in (0, 1], got {stock_ratio}")
    rng = random.Random(seed)
    catalog = [f"SKU-{i:04d}" for i in range(products)]
    demand: Counter[str] = Counter()
    orders: list[SimOrder] = []
    for n in range(n_orders):
        order_id = f"{run_id}-{n:07d}"
        roll = rng.random()
        k = rng.choice((2, 3)) if roll < 0.15 else 1
        picked = rng.sample(catalog, k)
        items = [(p, rng.randint(1, 3)) for p in picked]
        expected = "CONFIRMED"
        if 0.15 <= roll < 0.21:
            items[-1] = (SOLD_OUT, 1)
            expected = "REJECTED"
        elif 0.21 <= roll < 0.25:
            items[-1] = (UNKNOWN, 1)
            expected = "REJECTED"
        prices = [round(rng.uniform(5, MAX_PRICE), 2) for _ in items]
        total = round(sum(p * q for p, (_, q) in zip(prices, items, strict=True)), 2)
        if expected == "CONFIRMED" and 0.25 <= roll < 0.31:
            total = round(payment_limit + rng.uniform(1, 500), 2)  # declined by the gateway
            expected = "CANCELLED"
        if expected == "CONFIRMED" and all(
            attempt_fails(order_id, a, transient_failure_rate)
            for a in range(1, payment_attempts + 1)
        ):
            expected = "CANCELLED"  # the gateway never answered: the saga compensates
        for product, qty in items:
            demand[product] += qty
        customer = f"C{rng.randint(1, 500):04d}"
        payload = _payload(order_id, customer, items, prices, total, v1=rng.random() < v1_share)
        allowed = {expected}
        if stock_ratio < 1.0 and expected != "REJECTED":
            allowed.add("REJECTED")  # its stock may be gone by the time it asks
        orders.append(SimOrder(order_id, payload, expected, tuple(items), frozenset(allowed)))
    if stock_ratio < 1.0:
        restocks = {p: max(1, math.floor(demand[p] * stock_ratio)) for p in catalog}
    else:
        restocks = {p: demand[p] + 10 for p in catalog}
    scenario = Scenario(orders, restocks, stock_ratio=stock_ratio, demand=demand)
    scenario.expected.update(o.expected for o in orders)
    return scenario


def _payload(
    order_id: str,
    customer: str,
    items: list[tuple[str, int]],
    prices: list[float],
    total: float,
    *,
    v1: bool,
) -> bytes:
    now = utcnow()
    if v1:  # the seed's flat shape, as a KafkaJS service would send it
        return orjson.dumps(
            {
                "eventType": "OrderPlaced",
                "orderId": order_id,
                "customerId": customer,
                "items": [{"productId": p, "quantity": q} for p, q in items],
                "totalAmount": total,
                "timestamp": now.isoformat(),
            }
        )
    event = OrderPlaced(
        eventId=f"evt-{order_id}",
        timestamp=now,
        data=OrderPlacedData(
            orderId=order_id,
            customerId=customer,
            totalAmount=total,
            items=[
                OrderItem(productId=p, quantity=q, price=pr)
                for (p, q), pr in zip(items, prices, strict=True)
            ],
        ),
    )
    return encode(event)


def restock_events(run_id: str, restocks: dict[str, int]) -> list[StockAdjusted]:
    return [
        StockAdjusted(
            eventId=f"adj-{run_id}-{p}",
            timestamp=utcnow(),
            data=StockAdjustmentData(
                adjustmentId=f"{run_id}-{p}", productId=p, delta=qty, reason="restock"
            ),
        )
        for p, qty in restocks.items()
    ]

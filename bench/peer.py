"""Scenario 3, shared by both peers: the input, the result and the check of the outcomes.

The input is one topic of inventory commands keyed by productId: per product its restock
(StockAdjusted) first, then reservations (ReserveStock) from many orders, some beyond the stock
(out_of_stock), some for unknown products. Both peers read the same records and must reach the
same, known outcome counts.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import orjson

from bench import kafka_io, procstat
from orderstream.contracts.events import (
    ReserveStock,
    StockAdjusted,
    StockAdjustmentData,
    StockLine,
    encode,
    utcnow,
)

RESERVES_PER_PRODUCT = 20  # keeps the holds per product (and the state values) small
UNKNOWN_SHARE = 0.02
STOCKED_SHARE = 0.9  # of each product's demand; the rest is rejected as out_of_stock


@dataclass
class PeerInput:
    records: list[tuple[bytes, bytes]]  # (key, value) in the order they are written
    reserves: int  # input records that must each produce one result
    expected: Counter[str] = field(default_factory=Counter)  # outcome -> count


def outcome(result_type: str, reason: str | None) -> str:
    """Outcome label of one result: "reserved", or the rejection reason."""
    return "reserved" if result_type == "StockReserved" else reason or "rejected"


def build_peer_input(run_id: str, n_reserves: int, *, seed: int = 11) -> PeerInput:
    rng = random.Random(seed)
    products = [f"P{i:06d}" for i in range(max(1, n_reserves // RESERVES_PER_PRODUCT))]
    lines: list[tuple[str, str, int]] = []
    demand: Counter[str] = Counter()
    for n in range(n_reserves):
        known = rng.random() >= UNKNOWN_SHARE
        product = rng.choice(products) if known else f"GHOST-{n % 7}"
        qty = rng.randint(1, 3)
        lines.append((f"{run_id}-{n:08d}", product, qty))
        demand[product] += qty if known else 0
    stock = {p: int(demand[p] * STOCKED_SHARE) or 1 for p in products}
    records = [(p.encode(), encode(_restock(run_id, p, qty))) for p, qty in stock.items()]
    records += [(p.encode(), encode(_reserve(o, p, q))) for o, p, q in lines]
    return PeerInput(records, n_reserves, expected_outcomes(stock, lines))


def expected_outcomes(stock: dict[str, int], lines: list[tuple[str, str, int]]) -> Counter[str]:
    """The inventory rule (orderstream/domain/inventory.py reserve) applied in input order."""
    available = dict(stock)
    counts: Counter[str] = Counter()
    for _, product, qty in lines:
        if product not in available:
            counts["unknown_product"] += 1
        elif available[product] < qty:
            counts["out_of_stock"] += 1
        else:
            available[product] -= qty
            counts["reserved"] += 1
    return counts


def _restock(run_id: str, product: str, qty: int) -> StockAdjusted:
    return StockAdjusted(
        eventId=f"adj-{run_id}-{product}",
        timestamp=utcnow(),
        data=StockAdjustmentData(adjustmentId=f"{run_id}-{product}", productId=product, delta=qty),
    )


def _reserve(order_id: str, product: str, qty: int) -> ReserveStock:
    return ReserveStock(
        eventId=f"res-{order_id}",
        timestamp=utcnow(),
        data=StockLine(orderId=order_id, productId=product, quantity=qty),
    )


@dataclass(frozen=True)
class PeerRun:
    implementation: str
    reserves: int
    elapsed_s: float
    per_s: float
    peak_rss_mb: float
    cpu_s: float  # between the first and the last result
    problems: list[str]


async def finish(
    implementation: str,
    bootstrap: str,
    output: str,
    data: PeerInput,
    used: procstat.Usage,
    cpu: procstat.CpuTrace,
) -> PeerRun:
    """Time the results (record timestamps) and check their outcomes against the expected."""
    async with kafka_io.probe(bootstrap) as consumer:
        edges = await kafka_io.edge_timestamps(consumer, [output])
        records = await kafka_io.read_all(consumer, output)
    assert edges is not None
    got: Counter[str] = Counter()
    for rec in records:
        body = orjson.loads(rec.value)
        got[outcome(body["eventType"], body["data"].get("reason"))] += 1
    problems = [] if got == data.expected else [f"outcomes {dict(got)} != {dict(data.expected)}"]
    elapsed = edges[1] - edges[0]
    return PeerRun(
        implementation,
        data.reserves,
        elapsed,
        data.reserves / elapsed,
        used.peak_rss_mb,
        cpu.between(*edges),
        problems,
    )

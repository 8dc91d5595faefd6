"""Tracing on real workers: each order placed over HTTP is one trace, whose spans cover every hop
(order service, saga, inventory, payment, read models), linked parent to child through the
traceparent headers of the Kafka records, also where the hops run on different workers."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.conftest import Stack
from tests.integration.webclient import call, eventually, settled, stock_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ADMIN = {"Authorization": "Bearer change-me"}
HOPS = {
    "order-service POST /orders",
    "saga OrderPlaced",
    "inventory ReserveStock",
    "saga StockReserved",
    "payment PaymentRequested",  # the saga's inline charge (inside "saga StockReserved")
    "inventory CommitStock",  # also records the sale (product sales)
    "customer-orders OrderConfirmed",
}


def spans(*files: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for f in files if f.exists() for line in f.read_bytes().splitlines()]


def traces_of(found: list[dict[str, Any]], order_id: str) -> dict[str, list[dict[str, Any]]]:
    """The traces that mention the order, with all their spans."""
    ids = {s["traceId"] for s in found if s["attributes"].get("orderstream.order_id") == order_id}
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in found:
        if span["traceId"] in ids:
            by_trace[span["traceId"]].append(span)
    return by_trace


def order(order_id: str, n: int) -> dict[str, Any]:
    return {
        "eventType": "OrderPlaced",
        "data": {
            "orderId": order_id,
            "customerId": f"tc-{n}",
            "totalAmount": 20.0,
            "items": [{"productId": f"TR-{n}", "quantity": 2, "price": 10.0}],
        },
    }


def test_each_order_is_one_trace_with_every_hop(own_stack: type[Stack]) -> None:
    stack = own_stack
    # Given two workers exporting their spans to files
    s = stack()
    files = [s.dir / f"{name}-spans.jsonl" for name in ("w1", "w2")]
    w1 = s.worker("w1", wait=False, otel_exporter="file", otel_file=files[0])
    w2 = s.worker("w2", wait=False, otel_exporter="file", otel_file=files[1])
    w1.wait_ready()  # started together: one rebalance, not one per worker
    w2.wait_ready()
    run = int(time.time())
    orders = [f"tr-{run}-{n}" for n in range(4)]
    for n in range(len(orders)):
        adjusted = call(w1, "POST", f"/inventory/TR-{n}/adjust", {"delta": 10}, headers=ADMIN)
        assert adjusted.status == 202, adjusted.text
    # The adjustments are applied through their own topic: an order placed before its stock
    # is applied is rejected, and never confirmed
    for n in range(len(orders)):
        eventually(
            lambda n=n: (stock_of(w1, f"TR-{n}") or {}).get("available") == 10,
            what=f"TR-{n} restocked",
        )

    # When orders are placed over HTTP and confirmed
    for n, order_id in enumerate(orders):
        placed = call(w1, "POST", "/orders", order(order_id, n))
        assert placed.status == 202, placed.text
    for order_id in orders:
        outcome = settled(w1, order_id)
        assert outcome["status"] == "CONFIRMED", outcome

    # Then each order is exactly one trace, holding a span for every hop
    def complete() -> dict[str, dict[str, list[dict[str, Any]]]] | None:
        found = spans(*files)
        per_order = {o: traces_of(found, o) for o in orders}
        names = [{x["name"] for x in t} for o in orders for t in per_order[o].values()]
        return per_order if len(names) == len(orders) and all(n >= HOPS for n in names) else None

    per_order = eventually(complete, what="every hop of every order in the span files")
    instances: set[int] = set()
    for order_id, traces in per_order.items():
        (trace,) = traces.values()
        by_id = {x["spanId"]: x for x in trace}
        (root,) = [x for x in trace if x["parentSpanId"] is None]
        assert root["name"] == "order-service POST /orders", order_id
        for span in trace:
            if span is root:
                continue
            # Linked parent to child: a consumer's parent is the producer of its record
            parent = by_id[span["parentSpanId"]]
            if span["kind"] == "CONSUMER":
                assert parent["kind"] == "PRODUCER", (span["name"], parent["name"])
        instances.add(len({x["instance"] for x in trace}))
    # And traces cross processes: the context travelled in Kafka headers between workers
    assert max(instances) == 2

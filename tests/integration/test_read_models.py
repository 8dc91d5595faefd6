"""Read models on real workers: customer histories and hourly sales agree between two workers,
with the orders' expected outcomes and with a rebuild from the log (`orderstream replay
--compare`: diff 0); a rebuild cut short shows a diff; an event impossible for its order is
dead-lettered as out_of_order and counted."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from devtools import demo
from orderstream.contracts.events import StockReserved, StockResult, encode, event_id, utcnow
from orderstream.contracts.topics import registry
from orderstream.ops import dead_letters as dlq
from tests.integration.conftest import Stack
from tests.integration.webclient import eventually, get

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def expected_sales(*runs: demo.DemoResult) -> Counter[str]:
    sold: Counter[str] = Counter()
    for run in runs:
        for order in run.scenario.orders:
            if order.expected == "CONFIRMED":
                sold.update(dict(order.items))
    return sold


def without_server(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "servedBy"}


async def send_out_of_order(s: Stack) -> str:
    """A stock reply for an order that was never placed."""
    order_id = f"ghost-{int(time.time())}"
    event = StockReserved(
        eventId=event_id("StockReserved", order_id, "GHOST"),
        timestamp=utcnow(),
        data=StockResult(orderId=order_id, productId="GHOST", quantity=1),
    )
    producer = AIOKafkaProducer(bootstrap_servers=s.settings.bootstrap_servers)
    await producer.start()
    try:
        topic = registry(s.settings)["inventory_events"].name
        await producer.send_and_wait(topic, encode(event), key=order_id.encode())
    finally:
        await producer.stop()
    return order_id


def ahead_of_state_count(*workers: Any) -> float:
    total = 0.0
    for w in workers:
        for line in get(w, "/metrics").text.splitlines():
            if line.startswith("orderstream_replies_ahead_of_state_total{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_read_models_agree_across_workers_and_with_a_replay(own_stack: type[Stack]) -> None:
    stack = own_stack
    # Given two workers sharing the partitions
    s = stack()
    w1, w2 = s.workers("w1", "w2")

    # When orders flow in two runs, a moment apart
    first = s.run_orders(500, quiet=True, seed=1)
    time.sleep(1.5)
    cut = utcnow()
    time.sleep(1.5)
    second = s.run_orders(300, quiet=True, seed=2)
    assert first.problems == [] and second.problems == [], demo.summary(second)

    # Then each product's sales add up to what the confirmed orders bought, on both workers
    sold = expected_sales(first, second)
    for sku, units in sorted(sold.items()):
        path = f"/sales/{sku}?hours=3"
        eventually(
            lambda p=path, u=units: get(w1, p).json["total"]["units"] == u,  # type: ignore[misc]
            what=f"sales of {sku} to reach {units}",
        )
        assert without_server(get(w1, path).json) == without_server(get(w2, path).json)

    # And a customer's history lists every order they placed, the same from either worker
    placed = Counter(
        o.payload.split(b'"customerId":"')[1].split(b'"')[0].decode()
        for run in (first, second)
        for o in run.scenario.orders
    )
    for customer, count in placed.most_common(3):
        path = f"/customers/{customer}/orders?limit=100"
        body = eventually(lambda p=path: get(w1, p).json, what=customer)  # type: ignore[misc]
        assert body["totals"]["orders"] == count, customer
        assert len(body["orders"]) == count
        assert without_server(body) == without_server(get(w2, path).json)

    # When the read models are rebuilt from the log and compared with the live ones
    replayed = s.cli("replay", "--compare", "--wait", "30")
    # Then they are the same
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "diff: 0" in replayed.stdout and "records (100%)" in replayed.stdout
    assert f"{len(first.scenario.orders) + len(second.scenario.orders)} orders" in replayed.stdout

    # When the rebuild stops before the second run, the comparison shows what is missing
    cut_short = s.cli("replay", "--compare", "--until", cut.isoformat())
    assert cut_short.returncode == 1, cut_short.stdout + cut_short.stderr
    assert "diff: 0" not in cut_short.stdout
    assert "only live" in cut_short.stdout

    # When a stock reply arrives for an order never placed
    ghost = asyncio.run(send_out_of_order(s))
    # Then it is set aside as ahead of any state (after a crash the order's state may be
    # rebuilt behind it), counted, not a dead letter, and nothing else changes
    eventually(lambda: ahead_of_state_count(w1, w2) >= 1, what="the reply set aside")
    assert ahead_of_state_count(w1, w2) == 1
    assert not [x for x in asyncio.run(dlq.letters(s.settings)) if x.key == ghost.encode()]
    assert get(w1, f"/orders/{ghost}").status == 404

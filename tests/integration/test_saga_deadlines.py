"""Saga deadlines survive a failover: the worker that takes over a dead worker's partitions
re-drives the orders it inherits, once their deadlines pass.

The orders are written straight into the saga's changelog (as a worker that died between
saving the state and sending its commands would leave them): nothing but the deadline can move
them on, so the test fails if the survivor does not rebuild its deadline index after the
rebalance."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from devtools.verify import collect, invariant_violations
from orderstream.contracts.topics import changelog_topic
from orderstream.domain.saga import Line, OrderState
from orderstream.domain.state import encode_state
from tests.integration.conftest import Stack
from tests.integration.webclient import TOKEN, eventually, restock, stock_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ORDERS = [f"stranded-{i:02d}" for i in range(12)]  # 12 keys cover all 4 partitions


async def _strand(s: Stack, deadline: float) -> None:
    """Open sagas whose reserve commands were never sent."""
    now = datetime.now(UTC)
    producer = AIOKafkaProducer(bootstrap_servers=s.settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for order_id in ORDERS:
            state = OrderState(
                orderId=order_id,
                customerId="C-1",
                placedEventId=f"evt-{order_id}",
                totalAmount=10.0,
                placedAt=now,
                updatedAt=now,
                lines=[Line(productId="SKU-D", quantity=1, price=10.0)],
                deadline=deadline,
            )
            topic = changelog_topic(s.settings, "orders")
            await producer.send_and_wait(topic, encode_state(state), order_id.encode())
    finally:
        await producer.stop()


def test_the_survivor_of_a_failover_redrives_the_orders_it_inherits(stack: type[Stack]) -> None:
    # Given two workers sharing the partitions, and stock for the orders
    s = stack(admin_token=TOKEN)
    w1, w2 = s.workers("w1", "w2")
    restock(w1, "SKU-D", 100)
    # (applied through its own topic: wait, or a re-driven reservation could come first)
    eventually(lambda: (stock_of(w1, "SKU-D") or {}).get("available") == 100, what="restock")
    # and open sagas in every partition whose commands were lost, due in a few seconds
    asyncio.run(_strand(s, deadline=time.time() + 5))
    # When one worker dies and the other takes over all partitions
    w1.kill()
    # Then every stranded order is re-driven by the survivor to exactly one terminal state
    deadline = time.monotonic() + 150
    while True:
        report = asyncio.run(collect(s.settings, ORDERS))
        problems = invariant_violations(report, ORDERS)
        # the terminal status is sent with the stock commands: wait for those to apply too
        settled = "SKU-D" in report.stock and report.stock["SKU-D"].held == 0
        if (not problems and settled) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert problems == [], f"{problems}\n{w2.name} log: {w2.log_path}"
    assert {report.status_of(o) for o in ORDERS} <= {"CONFIRMED", "CANCELLED"}
    stock = report.stock["SKU-D"]
    assert stock.held == 0 and stock.conserved(), stock
    assert stock.sold == sum(report.status_of(o) == "CONFIRMED" for o in ORDERS)

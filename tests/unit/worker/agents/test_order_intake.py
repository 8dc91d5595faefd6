"""The order intake's bound on open sagas: at saga_max_open open orders the order partitions are
taken out of the fetch (Faust's full-queue mechanism, nothing dropped), and put back at 80%."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from faust.types import TP

import orderstream.worker.agents.order_intake as intake
from orderstream.contracts.topics import registry
from orderstream.worker.app import app, settings
from orderstream.worker.open_orders import open_orders

ORDERS = registry(settings)["orders"].name
P0, P1, OTHER = TP(ORDERS, 0), TP(ORDERS, 1), TP("inventory-requests", 0)

pytestmark = pytest.mark.asyncio


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The worker's real consumer (orderstream/faust_ext/consumer.py), not started, assigned P0, P1
    and OTHER, all of them fetched."""
    real = cast(Any, app.consumer)
    monkeypatch.setattr(real, "assignment", lambda: {P0, P1, OTHER})
    real._active_partitions = {P0, P1, OTHER}
    real._buffered_partitions = set()
    real.paused_by_app.clear()
    monkeypatch.setattr(settings, "saga_max_open", 10)
    open_orders.deadlines.clear()
    yield real
    open_orders.deadlines.clear()
    real.paused_by_app.clear()


def with_open(n: int) -> None:
    open_orders.deadlines.clear()
    open_orders.deadlines.update({f"o-{i}": ("RESERVING", 0.0) for i in range(n)})


def throttle() -> None:
    """What the intake agent does with the next order when the bound is reached."""
    if open_orders.intake_full():
        open_orders.hold_intake(app.consumer, intake.ORDER_TOPIC)


async def test_order_partitions_leave_the_fetch_at_the_bound_and_return_at_80_percent(
    consumer: Any,
) -> None:
    with_open(10)
    throttle()
    assert consumer._active_partitions == {
        OTHER
    }  # the other agents' partitions are fetched as before
    assert consumer.paused_by_app == {P0, P1}

    with_open(9)  # above 80% of the bound: still out
    open_orders.release_intake(app.consumer)
    assert consumer._active_partitions == {OTHER}

    with_open(7)
    open_orders.release_intake(app.consumer)
    assert consumer._active_partitions == {P0, P1, OTHER}
    assert consumer.paused_by_app == set()


async def test_a_queue_draining_does_not_put_a_throttled_partition_back(
    consumer: Any,
) -> None:
    # Given the intake's own queue full once (Faust marked P1), then the bound reached
    consumer.on_buffer_full(P1)
    with_open(10)
    throttle()
    # When the queue drains (Faust's flow control puts back what it marked)
    consumer.on_buffer_drop(P1)
    consumer.on_buffer_drop(P0)
    # Then the order partitions stay out of the fetch until the open orders fall (and marked
    # as Faust marks a full queue's: what was already fetched is still handed over)
    assert consumer._active_partitions == {OTHER}
    assert consumer._buffered_partitions == {P0, P1}
    with_open(7)
    open_orders.release_intake(app.consumer)
    assert consumer._active_partitions == {P0, P1, OTHER}


async def test_the_intake_queue_is_short() -> None:
    # (Faust's app.topic() drops its maxsize: the queue was the app's 4,096 records)
    assert intake.order_intake.channel.maxsize == intake.ORDER_QUEUE == 256

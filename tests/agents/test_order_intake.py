"""The order intake's bound on open sagas: at saga_max_open open orders the order partitions are
taken out of the fetch (Faust's full-queue mechanism, nothing dropped), and put back at 80%."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

import agents.order_intake as intake
from app.application import settings
from app.topics import registry
from tables.orders import open_deadlines

ORDERS = registry(settings)["orders"].name
P0, P1, OTHER = TP(ORDERS, 0), TP(ORDERS, 1), TP("inventory-requests", 0)

pytestmark = pytest.mark.asyncio


class FakeConsumer:
    def __init__(self) -> None:
        self.active = {P0, P1, OTHER}
        self.buffered: set[Any] = set()

    def _get_active_partitions(self) -> set[Any]:
        return self.active

    def on_buffer_full(self, tp: Any) -> None:
        self.active.discard(tp)
        self.buffered.add(tp)

    def on_buffer_drop(self, tp: Any) -> None:
        if tp in self.buffered:
            self.buffered.discard(tp)
            self.active.add(tp)


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeConsumer]:
    fake = FakeConsumer()
    monkeypatch.setattr(intake, "app", SimpleNamespace(consumer=fake))
    monkeypatch.setattr(settings, "saga_max_open", 10)
    intake.throttled.clear()
    open_deadlines.clear()
    yield fake
    open_deadlines.clear()
    intake.throttled.clear()


def open_orders(n: int) -> None:
    open_deadlines.clear()
    open_deadlines.update({f"o-{i}": ("RESERVING", 0.0) for i in range(n)})


async def test_order_partitions_leave_the_fetch_at_the_bound_and_return_at_80_percent(
    consumer: FakeConsumer,
) -> None:
    open_orders(10)
    intake._throttle()
    assert consumer.active == {OTHER}  # the other agents' partitions are fetched as before
    assert intake.throttled == {P0, P1}

    open_orders(9)  # above 80% of the bound: still out
    intake._release()
    assert consumer.active == {OTHER}

    open_orders(7)
    intake._release()
    assert consumer.active == {P0, P1, OTHER}
    assert intake.throttled == set()


async def test_a_partition_put_back_by_its_queue_is_taken_out_again(
    consumer: FakeConsumer,
) -> None:
    open_orders(10)
    intake._throttle()
    consumer.on_buffer_drop(P1)  # the stream queue drained below 40% meanwhile

    intake._throttle()

    assert consumer.active == {OTHER}

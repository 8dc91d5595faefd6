"""The worker's open orders: the deadline index the saga timer fires from, rebuilt after a
rebalance, and the intake bound it decides (out at saga_max_open, back at 80% of it)."""

from __future__ import annotations

from datetime import UTC, datetime

from orderstream.domain.saga import OrderState
from orderstream.settings import Settings
from orderstream.worker.open_orders import OpenOrders


def order(order_id: str, status: str = "RESERVING", deadline: float = 100.0) -> OrderState:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return OrderState(
        orderId=order_id, customerId="c-1", placedEventId="e-1", totalAmount=1.0,
        placedAt=at, updatedAt=at, status=status, lines=[], deadline=deadline,  # type: ignore[arg-type]
    )  # fmt: skip


def test_an_open_order_is_tracked_until_it_settles() -> None:
    owner = OpenOrders(Settings())
    owner.track(order("o-1", deadline=50.0))
    owner.track(order("o-2", deadline=150.0))
    assert owner.due(now=100.0) == [("o-1", "RESERVING", 50.0)]
    owner.rearm("o-1", "RESERVING", 220.0)  # fired once, not again at each tick
    assert owner.due(now=100.0) == []
    owner.track(order("o-2", status="CONFIRMED"))
    assert len(owner) == 1 and "o-2" not in owner.deadlines


def test_a_rebuild_keeps_only_the_open_orders_of_the_partitions_kept() -> None:
    owner = OpenOrders(Settings())
    owner.track(order("revoked"))
    assert owner.stale  # until the first rebuild
    found = owner.rebuild([order("kept"), order("settled", status="REJECTED")])
    assert (found, list(owner.deadlines), owner.stale) == (1, ["kept"], False)


def test_the_intake_is_full_at_the_bound_and_resumes_at_80_percent() -> None:
    owner = OpenOrders(Settings(saga_max_open=10))
    for i in range(10):
        owner.track(order(f"o-{i}"))
    assert owner.intake_full()
    owner.track(order("o-9", status="CANCELLED"))
    assert not owner.intake_full()

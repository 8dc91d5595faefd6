"""Business metrics: what each step counts, bounded labels, the stock cap, lag per partition."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from prometheus_client import REGISTRY

from orderstream.contracts.events import (
    OrderItem,
    OrderPlaced,
    OrderPlacedData,
    PaymentResult,
    PaymentSucceeded,
    SagaTimedOut,
    SagaTimeoutData,
    StockRejected,
    StockReserved,
    StockResult,
)
from orderstream.domain import saga
from orderstream.domain.common import Decision
from orderstream.domain.inventory import ProductStock
from orderstream.domain.saga import OrderState
from orderstream.domain.state import replace
from orderstream.observability import metrics

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _placed(order_id: str) -> OrderPlaced:
    data = OrderPlacedData(
        orderId=order_id, items=[OrderItem(productId="P1", quantity=1)], totalAmount=5.0
    )
    return OrderPlaced(eventId=f"e-{order_id}", timestamp=T0, data=data)


def _state(order_id: str, status: str, settled_after_s: float = 0.0) -> OrderState:
    placed = saga.place(None, _placed(order_id), 0.0, 30.0).state
    assert placed is not None
    return replace(placed, status=status, updatedAt=T0 + timedelta(seconds=settled_after_s))


def test_every_dead_letter_kind_raised_in_the_code_starts_at_zero() -> None:
    # Given every kind passed to EventError / RuleViolation anywhere in the code
    kinds = {"internal_error"}
    for path in [*REPO.glob("orderstream/**/*.py"), *REPO.glob("devtools/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) in ("EventError", "RuleViolation")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                kinds.add(node.args[0].value)
    # Then each is exported at 0 before it happens (so increase() sees the first one)
    assert kinds <= set(metrics.DEAD_LETTER_REASONS), kinds - set(metrics.DEAD_LETTER_REASONS)
    assert "invalid_json" in kinds and "duplicate_order_id" in kinds
    exported = {
        s.labels["reason"]
        for m in REGISTRY.collect()
        if m.name == "orderstream_dead_letters"
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert set(metrics.DEAD_LETTER_REASONS) <= exported


def test_a_saga_step_counts_placed_settled_duration_and_timeouts_once() -> None:
    placed, settled = (
        value("orderstream_orders_placed_total"),
        value("orderstream_orders_settled_total", status="CONFIRMED"),
    )
    slow = value("orderstream_saga_duration_seconds_bucket", status="CONFIRMED", le="5.0")
    dups = value("orderstream_duplicates_dropped_total", agent="saga")
    timeouts = value("orderstream_saga_timeouts_total", step="PAYING")
    paying = _state("m-1", "PAYING")
    done = _state("m-1", "CONFIRMED", settled_after_s=3.0)
    paid = PaymentSucceeded(
        eventId="p", timestamp=T0, data=PaymentResult(orderId="m-1", amount=5.0)
    )
    timeout = SagaTimedOut(
        eventId="t", timestamp=T0, data=SagaTimeoutData(orderId="m-1", step="PAYING")
    )

    # When an order is placed, times out once, settles, and a late reply comes as a duplicate
    metrics.saga_decided(None, _placed("m-1"), Decision(paying))
    metrics.saga_decided(paying, timeout, Decision(paying))
    metrics.saga_decided(paying, paid, Decision(done))
    metrics.saga_decided(done, paid, Decision(duplicate=True))

    # Then each is counted once, and the saga took 3 s (within the 5 s bucket)
    assert value("orderstream_orders_placed_total") == placed + 1
    assert value("orderstream_orders_settled_total", status="CONFIRMED") == settled + 1
    assert (
        value("orderstream_saga_duration_seconds_bucket", status="CONFIRMED", le="5.0") == slow + 1
    )
    assert value("orderstream_saga_duration_seconds_bucket", status="CONFIRMED", le="2.5") < (
        slow + 1
    )
    assert value("orderstream_saga_timeouts_total", step="PAYING") == timeouts + 1
    assert value("orderstream_duplicates_dropped_total", agent="saga") == dups + 1


def test_inventory_steps_count_reservations_and_rejections_by_reason() -> None:
    reserved = value("orderstream_stock_reservations_total")
    out = value("orderstream_stock_rejections_total", reason="out_of_stock")
    result = StockResult(orderId="o", productId="INV-1", quantity=1)
    metrics.inventory_decided(
        Decision(
            ProductStock(productId="INV-1", available=4, held=1, restocked=5, holds={"o": 1}),
            [StockReserved(eventId="r", timestamp=T0, data=result)],
        )
    )
    rejected = msgspec.structs.replace(result, reason="out_of_stock")
    metrics.inventory_decided(
        Decision(emit=[StockRejected(eventId="j", timestamp=T0, data=rejected)])
    )
    # A re-sent reserve is answered again but not counted as a second reservation
    metrics.inventory_decided(
        Decision(emit=[StockReserved(eventId="r", timestamp=T0, data=result)], duplicate=True)
    )
    assert value("orderstream_stock_reservations_total") == reserved + 1
    assert value("orderstream_stock_rejections_total", reason="out_of_stock") == out + 1
    assert value("orderstream_stock_available", product="INV-1") == 4
    assert value("orderstream_stock_held", product="INV-1") == 1


def test_stock_past_the_cap_is_summed_under_other() -> None:
    gauges = metrics.StockGauges(cap=2)
    gauges.forget()
    for n, available in enumerate((10, 20, 30, 40)):
        gauges.show(ProductStock(productId=f"CAP-{n}", available=available, held=n))
    gauges.show(ProductStock(productId="CAP-3", available=5, held=1))  # an update past the cap

    labels = {
        s.labels["product"]: s.value
        for m in REGISTRY.collect()
        if m.name == "orderstream_stock_available"
        for s in m.samples
    }
    assert labels == {"CAP-0": 10, "CAP-1": 20, metrics.OTHER_PRODUCTS: 30 + 5}
    assert value("orderstream_stock_held", product=metrics.OTHER_PRODUCTS) == 2 + 1
    gauges.forget()
    assert value("orderstream_stock_available", product="CAP-0") == 0.0


def test_consumer_lag_shows_only_the_partitions_of_the_last_refresh() -> None:
    metrics.consumer_lag({("orders", 0): 5, ("orders", 1): 0})
    metrics.consumer_lag({("orders", 1): 7})
    assert value("orderstream_consumer_lag", topic="orders", partition="1") == 7
    assert (
        REGISTRY.get_sample_value("orderstream_consumer_lag", {"topic": "orders", "partition": "0"})
        is None
    )


def test_stock_gauges_shown_again_after_forget_are_exported() -> None:
    # The labelled children are looked up once; forget() must not leave stale ones behind
    gauges = metrics.StockGauges(cap=5)
    gauges.show(ProductStock(productId="FORGET-1", available=3, held=1))
    gauges.forget()

    gauges.show(ProductStock(productId="FORGET-1", available=7, held=2))

    assert value("orderstream_stock_available", product="FORGET-1") == 7
    assert value("orderstream_stock_held", product="FORGET-1") == 2
    gauges.forget()


def test_a_labelled_child_is_looked_up_once() -> None:
    child = metrics._duplicates("saga")
    assert metrics._duplicates("saga") is child is metrics.DUPLICATES.labels("saga")
    before = value("orderstream_duplicates_dropped_total", agent="saga")
    metrics.duplicate_dropped("saga")
    assert value("orderstream_duplicates_dropped_total", agent="saga") == before + 1

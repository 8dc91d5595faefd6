"""Stored states read and write the same JSON as before they were msgspec Structs: the bytes
below are what the pydantic models of the version before wrote for the same states. Decoding
them and encoding the result must give them back byte for byte, so a worker of either version
reads what the other wrote (a rolling upgrade, a rollback, a changelog restored across it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from orderstream.domain.inventory import ProductStock
from orderstream.domain.projections import CustomerOrders, OrderSummary, ProductSales
from orderstream.domain.saga import OrderState
from orderstream.domain.state import State, decode_state, encode_state, replace

# Written by the version before (pydantic 2 models, `__pydantic_serializer__.to_json`).
WRITTEN_BEFORE: list[tuple[type[State], bytes]] = [
    (
        OrderState,
        b'{"orderId":"o-1","customerId":"c-1","placedEventId":"e-1","placedDigest":'
        b'"b966781a593c6e4ab6020ec2","totalAmount":28.0,"placedAt":"2026-12-02T06:25:20.770326Z",'
        b'"updatedAt":"2026-12-02T06:25:20.770326Z","status":"CONFIRMED","lines":[{"productId":'
        b'"p-1","quantity":2,"price":12.5,"status":"PENDING"},{"productId":"p-2","quantity":1,'
        b'"price":3.0,"status":"PENDING"}],"reason":null,"chargeId":null,"payment":{"orderId":'
        b'"o-1","customerId":"c-1","amount":28.0,"status":"SUCCEEDED","attempts":1,"chargeId":'
        b'"ch-1","reason":null,"requestEventId":"r-1","applied":{"x":1}},"deadline":1060.0,'
        b'"redrives":0,"applied":{"orders":7},"history":[{"eventType":"OrderPlaced","eventId":'
        b'"e-1","at":"2026-12-02T06:25:20Z"}],"settledAt":"2026-12-02T06:25:21.770326Z"}',
    ),
    (
        ProductStock,
        b'{"productId":"p-1","available":3,"held":2,"sold":1,"restocked":6,"holds":{"o-1":2},'
        b'"recentAdjustments":["a-1"],"applied":{"inventory-requests":5}}',
    ),
    (
        CustomerOrders,
        b'{"customerId":"c-1","recent":[{"orderId":"o-1","placedAt":"2026-12-02T06:25:20.770326Z",'
        b'"slot":null},{"orderId":"o-0","placedAt":"2026-01-01T00:00:00+01:00","slot":3}],'
        b'"placed":2,"confirmed":1,"spentCents":2800,"applied":{"o0":4}}',
    ),
    (
        ProductSales,
        b'{"productId":"p-1","hours":[{"hour":"2026-12-02T06:00:00Z","units":3,"revenueCents":'
        b'3750,"orders":2}],"applied":{"inventory-requests":9}}',
    ),
    (
        OrderSummary,
        b'{"orderId":"o-1","customerId":"c-1","status":"CONFIRMED","reason":null,"totalCents":'
        b'2800,"placedAt":"2026-12-02T06:25:20.770326Z","settledAt":"2026-12-02T06:25:20.770326Z",'
        b'"lines":[{"productId":"p-1","quantity":2,"priceCents":1250}],"eventId":"e-9","origin":'
        b'{"partition":3,"offset":17,"source":"i"}}',
    ),
]


@pytest.mark.parametrize(("cls", "raw"), WRITTEN_BEFORE, ids=lambda v: getattr(v, "__name__", ""))
def test_a_state_written_before_reads_and_writes_back_the_same_bytes(
    cls: type[State], raw: bytes
) -> None:
    assert encode_state(decode_state(raw, cls)) == raw


def test_the_fields_read_are_the_values_written() -> None:
    state = decode_state(WRITTEN_BEFORE[0][1], OrderState)

    assert state.placedAt == datetime(2026, 12, 2, 6, 25, 20, 770326, tzinfo=UTC)
    assert state.settledAt == state.placedAt + timedelta(seconds=1)
    assert state.payment is not None and state.payment.chargeId == "ch-1"
    assert [ln.price for ln in state.lines] == [12.5, 3.0]
    assert state.terminal


def test_an_older_state_takes_the_defaults_and_a_newer_ones_fields_are_ignored() -> None:
    older = b'{"productId":"p-9","available":1,"restocked":1}'  # no holds, no watermark
    newer = b'{"productId":"p-9","available":1,"restocked":1,"aFieldFromLater":[1,2]}'

    assert decode_state(older, ProductStock) == ProductStock(
        productId="p-9", available=1, restocked=1
    )
    assert decode_state(newer, ProductStock) == decode_state(older, ProductStock)


def test_a_state_that_breaks_its_types_is_refused_not_read_half() -> None:
    with pytest.raises(msgspec.ValidationError, match="available"):
        decode_state(b'{"productId":"p-9","available":-1}', ProductStock)
    with pytest.raises(msgspec.ValidationError, match="status"):
        decode_state(WRITTEN_BEFORE[0][1].replace(b'"CONFIRMED"', b'"SHIPPED"', 1), OrderState)


def test_a_state_is_frozen_and_replace_gives_a_changed_copy() -> None:
    stock = ProductStock(productId="p-1", available=2)

    with pytest.raises(AttributeError):
        stock.available = 3  # type: ignore[misc]
    moved = replace(stock, available=1, held=1)

    assert (stock.available, moved.available, moved.held) == (2, 1, 1)

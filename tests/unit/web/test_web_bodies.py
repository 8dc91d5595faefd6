"""Request bodies to events: the event models' checks, and ids that make a retry a duplicate."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from orderstream.errors import EventError
from orderstream.web import bodies

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DATA = {"orderId": "o-1", "items": [{"productId": "SKU-1", "quantity": 2}], "totalAmount": 20}


def test_a_v2_body_without_envelope_fields_gets_them_and_a_retry_gets_the_same_id() -> None:
    first = bodies.order_placed(orjson.dumps({"data": DATA}), NOW)
    again = bodies.order_placed(orjson.dumps({"data": dict(reversed(DATA.items()))}), NOW)
    assert first.eventType == "OrderPlaced" and first.timestamp == NOW
    assert first.data.orderId == "o-1" and first.data.totalAmount == 20.0
    assert first.eventId == again.eventId  # key order does not matter
    other = bodies.order_placed(orjson.dumps({"data": {**DATA, "totalAmount": 21}}), NOW)
    assert other.eventId != first.eventId


def test_envelope_fields_from_the_client_are_kept() -> None:
    body = {"eventId": "client-1", "timestamp": "2024-08-15T10:30:00Z", "data": DATA}
    event = bodies.order_placed(orjson.dumps(body), NOW)
    assert event.eventId == "client-1"
    assert event.timestamp == datetime(2024, 8, 15, 10, 30, tzinfo=UTC)


def test_the_flat_v1_shape_is_upcast() -> None:
    event = bodies.order_placed(orjson.dumps({"eventType": "OrderPlaced", **DATA}), NOW)
    assert event.schemaVersion == 2 and event.data.items[0].quantity == 2


@pytest.mark.parametrize(
    ("raw", "kind", "says"),
    [
        (b"", "validation", "JSON object"),
        (b"{nope", "invalid_json", "not JSON"),
        (b"[1, 2]", "validation", "JSON object"),
        (orjson.dumps({"data": {**DATA, "items": []}}), "validation", "items"),
        (orjson.dumps({"data": {**DATA, "totalAmount": "20"}}), "validation", "totalAmount"),
        (orjson.dumps({"eventType": "StockAdjusted", "data": DATA}), "unknown_event_type", ""),
        (b'{"data": {"orderId": "' + b"x" * 70_000 + b'"}}', "too_large", "limit"),
    ],
)
def test_bad_order_bodies_say_what_is_wrong(raw: bytes, kind: str, says: str) -> None:
    with pytest.raises(EventError) as caught:
        bodies.order_placed(raw, NOW)
    assert caught.value.kind == kind
    assert says in caught.value.message


def test_an_adjustment_takes_the_product_from_the_path_and_an_id_from_the_client() -> None:
    event = bodies.stock_adjusted("SKU-1", b'{"delta": 5, "adjustmentId": "adj-1"}', NOW)
    assert (event.data.productId, event.data.delta, event.data.reason) == ("SKU-1", 5, "restock")
    again = bodies.stock_adjusted("SKU-1", b'{"delta": 5, "adjustmentId": "adj-1"}', NOW)
    assert event.eventId == again.eventId
    generated = bodies.stock_adjusted("SKU-1", b'{"delta": -1, "reason": "correction"}', NOW)
    assert generated.data.adjustmentId and generated.data.adjustmentId != "adj-1"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"delta": 0}', "delta"),
        (b'{"delta": "5"}', "delta"),
        (b'{"delta": 5, "reason": "gift"}', "reason"),
        (b"{}", "delta"),
    ],
)
def test_bad_adjustments_say_what_is_wrong(raw: bytes, says: str) -> None:
    with pytest.raises(EventError) as caught:
        bodies.stock_adjusted("SKU-1", raw, NOW)
    assert says in caught.value.message

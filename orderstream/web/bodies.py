"""Request bodies to events, through the same models and checks as events read from Kafka.

Envelope fields a client leaves out are filled in deterministically from the content, so a
retried request publishes the same event id (and the saga drops it as a duplicate)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson

from orderstream.contracts.events import (
    MAX_EVENT_BYTES,
    OrderPlaced,
    StockAdjusted,
    StockAdjustmentData,
    decode,
    event_id,
    validate,
)
from orderstream.errors import EventError


def _json_object(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError("too_large", f"{len(raw)} bytes, the limit is {MAX_EVENT_BYTES}")
    try:
        obj = orjson.loads(raw or b"null")
    except orjson.JSONDecodeError as exc:
        raise EventError("invalid_json", f"the body is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise EventError("validation", "the body must be a JSON object")
    return obj


def order_placed(raw: bytes, now: datetime) -> OrderPlaced:
    """POST /orders: an OrderPlaced event, the v2 envelope or the flat v1 shape."""
    obj = _json_object(raw)
    obj.setdefault("eventType", "OrderPlaced")
    obj.setdefault("timestamp", now.isoformat())
    if isinstance(obj.get("data"), dict):
        content = orjson.dumps(obj["data"], option=orjson.OPT_SORT_KEYS).decode()
        obj.setdefault("eventId", event_id("http", "OrderPlaced", content))
    event = decode(orjson.dumps(obj), accept=("OrderPlaced",))
    assert isinstance(event, OrderPlaced)
    return event


def stock_adjusted(product_id: str, raw: bytes, now: datetime) -> StockAdjusted:
    """POST /inventory/{sku}/adjust: {"delta": n, "reason"?, "adjustmentId"?}."""
    obj = _json_object(raw)
    # Without an id from the client, a retried request cannot be told from a second restock.
    obj.setdefault("adjustmentId", str(uuid.uuid4()))
    data = validate({**obj, "productId": product_id}, StockAdjustmentData)
    return StockAdjusted(
        eventId=event_id("StockAdjusted", data.adjustmentId), timestamp=now, data=data
    )

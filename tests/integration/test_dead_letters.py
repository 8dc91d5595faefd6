"""Bad input: each bad message lands in the dead-letter topic with its reason, nothing else does,
the worker keeps going, and every valid order still reaches its expected state."""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
import pytest

from devtools import demo
from devtools.simulator import Scenario
from orderstream.ops import dead_letters as dlq
from tests.integration.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

VALID_ORDERS = 3_000
BAD_MESSAGES = 1_000


def _order(order_id: str, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "eventId": f"bad-evt-{order_id}",
        "eventType": "OrderPlaced",
        "timestamp": "2026-11-26T10:00:00Z",
        "data": {
            "orderId": order_id,
            "customerId": "C1",
            "totalAmount": 10.0,
            "items": [{"productId": "SKU-0001", "quantity": 1, "price": 10.0}],
        },
    }
    body.update(changes)
    return body


def _with_item(order_id: str, **item: object) -> bytes:
    body = _order(order_id)
    body["data"]["items"][0].update(item)  # type: ignore[index]
    return orjson.dumps(body)


# Each maker returns (kind expected in the DLQ headers, raw value) for the i-th bad message.
BAD_KINDS = {
    "invalid_json": lambda i: b'{"eventType": "OrderPlaced", "orderId": ',
    "invalid_utf8": lambda i: b'{"eventType":"OrderPlaced","orderId":"\xff\xfe' + str(i).encode(),
    "too_large": lambda i: orjson.dumps(_order(f"big-{i}", note="x" * 100 * 1024)),
    "too_deep": lambda i: b'{"eventType":"OrderPlaced","x":' + b"[" * 3000 + b"]" * 3000 + b"}",
    "zero_quantity": lambda i: _with_item(f"zero-{i}", quantity=0),
    "negative_quantity": lambda i: _with_item(f"neg-{i}", quantity=-2),
    "missing_fields": lambda i: orjson.dumps(
        {
            "eventType": "OrderPlaced",
            "eventId": f"m{i}",
            "timestamp": "2026-11-26T10:00:00Z",
            "data": {"orderId": f"missing-{i}"},
        }
    ),
    "wrong_types": lambda i: _with_item(f"types-{i}", quantity="two"),
    "unknown_event_type": lambda i: orjson.dumps(_order(f"unk-{i}", eventType="OrderExploded")),
}
EXPECTED_KIND = {
    "invalid_json": "invalid_json",
    "invalid_utf8": "invalid_utf8",
    "too_large": "too_large",
    "too_deep": "too_deep",
    "zero_quantity": "validation",
    "negative_quantity": "validation",
    "missing_fields": "validation",
    "wrong_types": "validation",
    "unknown_event_type": "unknown_event_type",
    "conflicting_duplicate": "conflicting_duplicate",
}


def bad_messages(scenario: Scenario) -> tuple[demo.Injected, Counter[bytes], dict[bytes, str]]:
    """1,000 bad messages spread over the stream; a tenth reuse a valid order's event id with
    other content (sent after that order)."""
    inject: demo.Injected = {}
    values: Counter[bytes] = Counter()
    kinds: dict[bytes, str] = {}
    makers = list(BAD_KINDS.items())
    v2_orders = [(n, o) for n, o in enumerate(scenario.orders) if b'"data"' in o.payload]
    for i in range(BAD_MESSAGES):
        slot = i * len(scenario.orders) // BAD_MESSAGES
        if i % 10 == 9:  # the same event id sent twice with different content
            n, order = v2_orders[i % len(v2_orders)]
            body = orjson.loads(order.payload)
            body["data"]["totalAmount"] = body["data"]["totalAmount"] + 1
            name, key, value = "conflicting_duplicate", order.order_id.encode(), orjson.dumps(body)
            slot = n
        else:
            name, make = makers[i % len(makers)]
            key, value = f"bad-{i}".encode(), make(i)
        inject.setdefault(slot, []).append((key, value))
        values[value] += 1
        kinds[value] = EXPECTED_KIND[name]
    return inject, values, kinds


def test_bad_messages_go_to_the_dead_letter_topic_with_their_reason(stack: type[Stack]) -> None:
    s = stack()
    worker = s.worker()
    captured: dict[str, object] = {}

    def inject(scenario: Scenario) -> demo.Injected:
        planned, values, kinds = bad_messages(scenario)
        captured.update(values=values, kinds=kinds)
        return planned

    # When 3,000 valid orders flow with 1,000 bad messages among them
    result = asyncio.run(demo.run(s.settings, VALID_ORDERS, quiet=True, inject=inject))

    # Then every valid order reaches its expected state and the invariants hold
    assert result.problems == [], demo.summary(result)
    assert result.settled == VALID_ORDERS
    assert worker.running, "the worker must survive bad input"

    # And exactly the bad messages are dead letters, each with the reason it failed
    letters = asyncio.run(dlq.letters(s.settings))
    values: Counter[bytes] = captured["values"]  # type: ignore[assignment]
    kinds: dict[bytes, str] = captured["kinds"]  # type: ignore[assignment]
    assert Counter(x.value for x in letters) == values
    for letter in letters:
        assert letter.value is not None
        assert letter.reason["kind"] == kinds[letter.value], letter.reason
        assert letter.reason["message"]
        assert letter.reason["topic"] == s.settings.topic_prefix + "order-events"
        assert int(letter.reason["offset"]) >= 0 and letter.reason["attempts"] == "1"
        assert letter.reason["failed-at"]
    assert len(letters) == BAD_MESSAGES

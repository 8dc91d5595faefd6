"""The event codec: both seed shapes decode, every event survives a round trip, and each kind of
bad input is refused with its own EventError kind (the dead-letter reason)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderstream.contracts.events import (
    ALL_EVENTS,
    MAX_EVENT_BYTES,
    VERSIONS,
    CommitStock,
    CommitStockBatch,
    Event,
    OrderCancelled,
    OrderConfirmed,
    OrderItem,
    OrderOutcome,
    OrderPlaced,
    OrderPlacedData,
    OrderRejected,
    PaymentFailed,
    PaymentRequestData,
    PaymentRequested,
    PaymentResult,
    PaymentSucceeded,
    ReleaseStock,
    ReserveStock,
    SagaTimedOut,
    SagaTimeoutData,
    StockAdjusted,
    StockAdjustmentData,
    StockCommits,
    StockLine,
    StockRejected,
    StockReserved,
    StockResult,
    _decode_carefully,
    decode,
    encode,
)
from orderstream.domain.saga import content_digest
from orderstream.errors import EventError, OrderstreamError

SEED_V1 = (
    b'{"eventType":"OrderPlaced","orderId":"12345","items":[{"productId":"P001","quantity":2}],'
    b'"totalAmount":150.00,"timestamp":"2023-10-05T12:00:00Z"}'
)
SEED_V2 = (
    b'{"eventId":"uuid-123","eventType":"OrderPlaced","timestamp":"2024-08-15T10:30:00Z",'
    b'"data":{"orderId":"order-456","customerId":"customer-789",'
    b'"items":[{"productId":"prod-1","quantity":2,"price":29.99}],"totalAmount":59.98}}'
)
T = datetime(2024, 8, 15, 10, 30, tzinfo=UTC)


def seed(version: int) -> dict[str, Any]:
    """A fresh, mutable copy of a seed message."""
    return orjson.loads(SEED_V1 if version == 1 else SEED_V2)  # type: ignore[no-any-return]


def reason(raw: bytes | None, accept: tuple[str, ...] | None = None) -> EventError:
    with pytest.raises(EventError) as info:
        decode(raw, accept)
    return info.value


# --- the seed's two shapes -------------------------------------------------------------------


def test_decodes_the_seed_v1_flat_shape_by_upcasting() -> None:
    event = decode(SEED_V1)

    assert isinstance(event, OrderPlaced)
    assert event.schemaVersion == 2
    assert event.timestamp == datetime(2023, 10, 5, 12, 0, tzinfo=UTC)
    assert event.data == OrderPlacedData(
        orderId="12345",
        customerId="anonymous",
        totalAmount=150.0,
        items=[OrderItem(productId="P001", quantity=2, price=0.0)],
    )
    assert uuid.UUID(event.eventId).version == 5


def test_decodes_the_seed_v2_envelope() -> None:
    event = decode(SEED_V2)

    assert isinstance(event, OrderPlaced)
    assert event.eventId == "uuid-123"
    assert event.timestamp == T
    assert event.causationId is None
    assert event.data == OrderPlacedData(
        orderId="order-456",
        customerId="customer-789",
        totalAmount=59.98,
        items=[OrderItem(productId="prod-1", quantity=2, price=29.99)],
    )


def test_v1_event_id_is_the_same_for_the_same_bytes() -> None:
    # A re-sent v1 message is a duplicate: it must get the id of the first copy.
    assert decode(SEED_V1).eventId == decode(bytes(SEED_V1)).eventId


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(orderId="12346"),
        lambda m: m["items"][0].update(quantity=3),
        lambda m: m.update(totalAmount=151.0),
        lambda m: m.update(timestamp="2023-10-05T12:00:01Z"),
        lambda m: m.update(customerId="C-1"),
    ],
    ids=["orderId", "quantity", "amount", "timestamp", "customer"],
)
def test_v1_event_id_differs_for_different_content(
    change: Callable[[dict[str, Any]], None],
) -> None:
    other = seed(1)
    change(other)

    assert decode(orjson.dumps(other)).eventId != decode(SEED_V1).eventId


def test_upcast_v1_reencodes_as_an_equal_v2_event() -> None:
    upcast = decode(SEED_V1)

    again = decode(encode(upcast))

    assert again == upcast
    assert b'"data"' in encode(upcast)


# --- round trip of every event type ----------------------------------------------------------

LINE = StockLine(orderId="o-1", productId="p-1", quantity=3)
OUTCOME = {"orderId": "o-1", "customerId": "c-1", "totalAmount": 12.5, "placedAt": T}
SAMPLES: dict[type, list[Event]] = {
    OrderPlaced: [
        OrderPlaced(
            eventId="e-1",
            timestamp=T,
            data=OrderPlacedData(
                orderId="o-1",
                customerId="c-1",
                totalAmount=12.5,
                items=[
                    OrderItem(productId="p-1", quantity=3, price=2.5),
                    OrderItem(productId="p-2", quantity=1, price=5.0),
                ],
            ),
        ),
    ],
    ReserveStock: [ReserveStock(eventId="e-2", timestamp=T, causationId="e-1", data=LINE)],
    ReleaseStock: [ReleaseStock(eventId="e-3", timestamp=T, causationId="e-1", data=LINE)],
    CommitStock: [
        CommitStock(eventId="e-4", timestamp=T, data=LINE),
        CommitStock(eventId="e-4p", timestamp=T, data=msgspec.structs.replace(LINE, price=12.5)),
    ],
    CommitStockBatch: [
        CommitStockBatch(
            eventId="e-4b",
            timestamp=T,
            data=StockCommits(
                productId="p-1",
                commits=[
                    CommitStock(eventId="e-4", timestamp=T, data=LINE),
                    CommitStock(
                        eventId="e-4q",
                        timestamp=T,
                        data=msgspec.structs.replace(LINE, orderId="o-2", price=3.0),
                    ),
                ],
            ),
        )
    ],
    StockAdjusted: [
        StockAdjusted(
            eventId="e-5",
            timestamp=T,
            data=StockAdjustmentData(
                adjustmentId="a-1", productId="p-1", delta=-4, reason="correction"
            ),
        ),
        StockAdjusted(
            eventId="e-5b",
            timestamp=T,
            data=StockAdjustmentData(adjustmentId="a-2", productId="p-1", delta=100),
        ),
    ],
    StockReserved: [
        StockReserved(
            eventId="e-6", timestamp=T, data=StockResult(orderId="o-1", productId="p-1", quantity=3)
        )
    ],
    StockRejected: [
        StockRejected(
            eventId="e-7",
            timestamp=T,
            data=StockResult(orderId="o-1", productId="p-1", quantity=3, reason="out_of_stock"),
        )
    ],
    PaymentRequested: [
        PaymentRequested(
            eventId="e-8",
            timestamp=T,
            data=PaymentRequestData(orderId="o-1", customerId="c-1", amount=12.5),
        )
    ],
    PaymentSucceeded: [
        PaymentSucceeded(
            eventId="e-9",
            timestamp=T,
            data=PaymentResult(orderId="o-1", amount=12.5, attempts=2, chargeId="ch_1"),
        )
    ],
    PaymentFailed: [
        PaymentFailed(
            eventId="e-10",
            timestamp=T,
            data=PaymentResult(
                orderId="o-1", amount=12.5, attempts=3, reason="gateway_unavailable: timeout"
            ),
        )
    ],
    OrderConfirmed: [
        OrderConfirmed(
            eventId="e-11", timestamp=T, data=OrderOutcome(status="CONFIRMED", **OUTCOME)
        )
    ],
    OrderRejected: [
        OrderRejected(
            eventId="e-12",
            timestamp=T,
            data=OrderOutcome(status="REJECTED", reason="out_of_stock: p-1", **OUTCOME),
        )
    ],
    OrderCancelled: [
        OrderCancelled(
            eventId="e-13",
            timestamp=T,
            data=OrderOutcome(
                status="CANCELLED", reason="payment_failed: amount_over_limit", **OUTCOME
            ),
        )
    ],
    SagaTimedOut: [
        SagaTimedOut(
            eventId="e-14", timestamp=T, data=SagaTimeoutData(orderId="o-1", step="RESERVING")
        )
    ],
}


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_every_event_type_survives_encode_then_decode(cls: type) -> None:
    assert SAMPLES.get(cls), f"add a sample {cls.__name__} to SAMPLES"
    for event in SAMPLES[cls]:
        raw = encode(event)

        back = decode(raw, (event.eventType,))

        assert type(back) is cls
        assert back == event
        assert encode(back) == raw


def test_a_commit_carries_its_price_and_one_without_still_decodes() -> None:
    priced = decode(encode(SAMPLES[CommitStock][1]), ("CommitStock",))
    older = b'{"eventId":"e-9","eventType":"CommitStock","timestamp":"2024-08-15T10:30:00Z",'
    older += b'"data":{"orderId":"o-1","productId":"p-1","quantity":3}}'

    assert isinstance(priced, CommitStock) and priced.data.price == 12.5
    commit = decode(older, ("CommitStock",))
    assert isinstance(commit, CommitStock) and commit.data.price is None
    assert b"price" not in encode(SAMPLES[ReserveStock][0])


def test_encode_leaves_out_empty_optional_fields() -> None:
    raw = encode(SAMPLES[PaymentSucceeded][0])

    assert b"causationId" not in raw and b"reason" not in raw
    assert b'"chargeId":"ch_1"' in raw


ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,20}", fullmatch=True)
money = st.floats(min_value=0, max_value=1_000_000_000, allow_nan=False)


@given(
    order_id=ids,
    customer=ids,
    items=st.dictionaries(ids, st.tuples(st.integers(1, 10_000), money), min_size=1, max_size=5),
    total=money,
    when=st.datetimes(timezones=st.just(UTC)),
)
def test_any_valid_order_survives_a_round_trip(
    order_id: str,
    customer: str,
    items: dict[str, tuple[int, float]],
    total: float,
    when: datetime,
) -> None:
    event = OrderPlaced(
        eventId=f"e-{order_id}",
        timestamp=when,
        data=OrderPlacedData(
            orderId=order_id,
            customerId=customer,
            totalAmount=total,
            items=[
                OrderItem(productId=p, quantity=q, price=price) for p, (q, price) in items.items()
            ],
        ),
    )

    assert decode(encode(event)) == event


# --- what is refused, and why ----------------------------------------------------------------


def with_item(version: int, **fields: Any) -> bytes:
    msg = seed(version)
    items = msg["items"] if version == 1 else msg["data"]["items"]
    items[0].update(fields)
    return orjson.dumps(msg)


def without(version: int, path: str) -> bytes:
    msg = seed(version)
    *parents, last = path.split(".")
    target = msg
    for p in parents:
        target = target[p]
    del target[last]
    return orjson.dumps(msg)


def test_event_error_names_its_kind_and_is_an_orderstream_error() -> None:
    err = reason(b"{")

    assert isinstance(err, OrderstreamError)
    assert str(err).startswith("invalid_json: ")


def test_refuses_a_message_without_value() -> None:
    assert reason(None).kind == "empty"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"eventType":"OrderPlaced","orderId":"\xff"}',
        b"\xfe\xff",
        SEED_V2.replace(b"prod-1", b"\xc3"),
    ],
    ids=["bad-byte", "bom-like", "truncated-sequence"],
)
def test_refuses_invalid_utf8(raw: bytes) -> None:
    assert reason(raw).kind == "invalid_utf8"


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"eventType": "OrderPlaced",}', b"{'a': 1}", b"NaN", SEED_V2[:-1]],
    ids=["empty", "open-brace", "trailing-comma", "single-quotes", "nan", "truncated"],
)
def test_refuses_invalid_json(raw: bytes) -> None:
    assert reason(raw).kind == "invalid_json"


def padded(size: int) -> bytes:
    """A valid v2 OrderPlaced of exactly `size` bytes (an unknown field is ignored)."""
    base = SEED_V2[:-1] + b',"pad":""}'
    return base[:-2] + b"x" * (size - len(base)) + b'"}'


def test_accepts_a_message_of_exactly_the_size_limit() -> None:
    raw = padded(MAX_EVENT_BYTES)

    assert len(raw) == MAX_EVENT_BYTES
    assert isinstance(decode(raw), OrderPlaced)


def test_refuses_a_message_over_64_kib() -> None:
    err = reason(padded(MAX_EVENT_BYTES + 1))

    assert err.kind == "too_large"
    assert str(MAX_EVENT_BYTES) in err.message


@pytest.mark.parametrize(
    "raw",
    [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000],
    ids=["arrays", "objects"],
)
def test_refuses_deeply_nested_json(raw: bytes) -> None:
    assert reason(raw).kind == "too_deep"


@pytest.mark.parametrize("raw", [b"[]", b'"OrderPlaced"', b"42", b"null", b"true"])
def test_refuses_json_that_is_not_an_object(raw: bytes) -> None:
    err = reason(raw)

    assert err.kind == "validation"
    assert "expected a JSON object" in err.message


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    "quantity",
    [0, -1, "2", 2.5, 2.0, True, None, 10_001],
    ids=["zero", "negative", "string", "fraction", "float", "bool", "null", "too-many"],
)
def test_refuses_a_bad_quantity(version: int, quantity: object) -> None:
    err = reason(with_item(version, quantity=quantity))

    assert err.kind == "validation"
    assert "items.0.quantity" in err.message


@pytest.mark.parametrize(
    ("version", "path"),
    [
        (2, "eventId"),
        (2, "timestamp"),
        (2, "data.orderId"),
        (2, "data.items"),
        (2, "data.totalAmount"),
        (1, "orderId"),
        (1, "items"),
        (1, "totalAmount"),
        (1, "timestamp"),
    ],
)
def test_refuses_a_missing_field(version: int, path: str) -> None:
    err = reason(without(version, path))

    assert err.kind == "validation"
    assert f"{path}: Field required" in err.message


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("totalAmount", "59.98", "data.totalAmount"),
        ("totalAmount", True, "data.totalAmount"),
        ("totalAmount", -0.01, "data.totalAmount"),
        ("orderId", 456, "data.orderId"),
        ("orderId", "", "data.orderId"),
        ("orderId", "order 456", "data.orderId"),
        ("items", [], "data.items"),
        ("items", {"productId": "prod-1", "quantity": 1}, "data.items"),
    ],
    ids=[
        "amount-string",
        "amount-bool",
        "amount-negative",
        "id-number",
        "id-empty",
        "id-space",
        "no-items",
        "items-object",
    ],
)
def test_refuses_a_wrongly_typed_field(field: str, value: object, where: str) -> None:
    msg = seed(2)
    msg["data"][field] = value

    err = reason(orjson.dumps(msg))

    assert err.kind == "validation"
    assert err.message.startswith(where)


def test_refuses_a_bad_envelope_timestamp() -> None:
    msg = seed(2)
    msg["timestamp"] = "yesterday"

    assert reason(orjson.dumps(msg)).message.startswith("timestamp")


@pytest.mark.parametrize("version", [1, 2])
def test_refuses_the_same_product_twice_in_one_order(version: int) -> None:
    msg = seed(version)
    items = msg["items"] if version == 1 else msg["data"]["items"]
    items.append(dict(items[0]))

    err = reason(orjson.dumps(msg))

    assert err.kind == "validation"
    assert "once per order" in err.message


@pytest.mark.parametrize("event_type", ["OrderShipped", "", 5, None, "orderplaced"])
def test_refuses_an_unknown_event_type(event_type: object) -> None:
    msg = seed(2)
    msg["eventType"] = event_type

    assert reason(orjson.dumps(msg)).kind == "unknown_event_type"


def test_refuses_a_message_without_event_type() -> None:
    assert reason(without(2, "eventType")).kind == "unknown_event_type"


@pytest.mark.parametrize("raw", [SEED_V1, SEED_V2], ids=["v1", "v2"])
def test_refuses_an_event_type_the_topic_does_not_carry(raw: bytes) -> None:
    err = reason(raw, accept=("ReserveStock", "ReleaseStock"))

    assert err.kind == "unknown_event_type"
    assert "does not belong on this topic" in err.message
    assert isinstance(decode(raw, accept=("OrderPlaced",)), OrderPlaced)


def test_refuses_a_known_type_with_another_types_body() -> None:
    msg = seed(2)
    msg["eventType"] = "ReserveStock"

    err = reason(orjson.dumps(msg))

    assert err.kind == "validation"
    assert "data.productId: Field required" in err.message


def test_ignores_unknown_fields_for_forward_compatibility() -> None:
    msg = seed(2)
    msg["traceId"] = "abc"
    msg["data"]["channel"] = "web"

    assert decode(orjson.dumps(msg)) == decode(SEED_V2)


# --- versions and upcasters ------------------------------------------------------------------

OUTCOME_V2: dict[str, Any] = {
    "eventId": "e-20",
    "schemaVersion": 2,
    "eventType": "OrderConfirmed",
    "timestamp": "2024-08-15T10:30:05Z",
    "data": {
        "orderId": "o-1",
        "customerId": "c-1",
        "status": "CONFIRMED",
        "totalAmount": 12.5,
        "placedAt": "2024-08-15T10:30:00Z",
    },
}


@pytest.mark.parametrize("event_type", ["OrderConfirmed", "OrderRejected", "OrderCancelled"])
def test_v2_outcome_is_upcast_to_v3_without_items(event_type: str) -> None:
    event = decode(orjson.dumps({**OUTCOME_V2, "eventType": event_type}))

    assert event.schemaVersion == 3
    assert isinstance(event.data, OrderOutcome) and event.data.items == []
    assert b'"schemaVersion":3' in encode(event)


def test_v3_outcome_keeps_its_items() -> None:
    v3 = {**OUTCOME_V2, "schemaVersion": 3}
    v3["data"] = {**OUTCOME_V2["data"], "items": [{"productId": "p-1", "quantity": 2}]}

    event = decode(orjson.dumps(v3))

    assert isinstance(event.data, OrderOutcome)
    assert event.data.items == [OrderItem(productId="p-1", quantity=2)]


def test_upcaster_keeps_items_a_v2_producer_already_sent() -> None:
    v2 = {
        **OUTCOME_V2,
        "data": {**OUTCOME_V2["data"], "items": [{"productId": "p", "quantity": 1}]},
    }

    event = decode(orjson.dumps(v2))

    assert isinstance(event.data, OrderOutcome) and len(event.data.items) == 1


def test_a_newer_version_is_read_as_the_current_one() -> None:
    # A rolling upgrade: a newer producer's v4 with a field this reader does not know.
    v4 = {**OUTCOME_V2, "schemaVersion": 4, "data": {**OUTCOME_V2["data"], "coupon": "X"}}

    event = decode(orjson.dumps(v4))

    assert event.schemaVersion == 4 and isinstance(event, OrderConfirmed)


def test_every_event_type_has_a_version_and_outcomes_are_v3() -> None:
    assert VERSIONS["OrderPlaced"] == 2 and VERSIONS["OrderConfirmed"] == 3
    assert set(VERSIONS) == {cls.eventType for cls in ALL_EVENTS}


@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_event_id_is_the_uuid5_of_the_joined_parts(parts: list[str]) -> None:
    from orderstream.contracts import events

    expected = uuid.uuid5(events._NAMESPACE, "\x1f".join(parts))
    assert events.event_id(*parts) == str(expected)


# --- the codec's two ways, its bytes, and what the versions before wrote ------------------------


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


ALL_SAMPLES = [ev for events in SAMPLES.values() for ev in events]


@pytest.mark.parametrize("event", ALL_SAMPLES, ids=lambda e: e.eventType)
def test_encode_writes_every_field_but_the_empty_optional_ones(event: Event) -> None:
    expected = {"eventType": event.eventType, **_without_none(msgspec.to_builtins(event))}
    assert orjson.loads(encode(event)) == expected


def test_a_text_that_looks_like_an_empty_field_is_kept() -> None:
    reason_text = 'declined,"reason":null,"chargeId":null'
    data = PaymentResult(orderId="o-1", amount=5.0, reason=reason_text)
    event = PaymentFailed(eventId="e-1", timestamp=T, data=data)
    raw = encode(event)
    assert orjson.loads(raw)["data"]["reason"] == reason_text
    assert decode(raw) == event


@pytest.mark.parametrize("event", ALL_SAMPLES, ids=lambda e: e.eventType)
def test_the_quick_and_the_careful_decoding_agree(event: Event) -> None:
    raw = encode(event)
    assert decode(raw) == _decode_carefully(raw, None) == event


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False,
    allow_infinity=False) | st.text(max_size=12) | st.sampled_from(["2024-08-15T10:30:00Z",
    "o-1", "", "P001\n", "CONFIRMED", "OrderPlaced"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
    max_size=3),
    max_leaves=6,
)  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


def _mutated(obj: Any, path: tuple[Any, ...], new: Any, delete: bool) -> Any:
    head, *rest = path
    copy = dict(obj) if isinstance(obj, dict) else list(obj)
    if rest:
        copy[head] = _mutated(copy[head], tuple(rest), new, delete)
    elif delete and isinstance(copy, dict):
        del copy[head]
    else:
        copy[head] = new
    return copy


def _outcome(raw: bytes, accept: tuple[str, ...] | None, careful: bool) -> Any:
    try:
        return (_decode_carefully if careful else decode)(raw, accept)
    except EventError as exc:
        return exc.kind


@given(
    st.sampled_from([*ALL_SAMPLES, orjson.loads(SEED_V1), orjson.loads(SEED_V2)]),
    st.data(),
    JSON_VALUES,
    st.booleans(),
    st.sampled_from([None, ("OrderPlaced",), ("StockReserved", "StockRejected")]),
)
def test_any_changed_field_is_decided_alike_both_ways(
    sample: Any, data: st.DataObject, new: Any, delete: bool, accept: Any
) -> None:
    """One field of a valid message replaced by any JSON value (or left out): the one-pass
    decoding accepts what the careful one accepts, as the same event, and refuses what it
    refuses, for the same kind of reason."""
    obj = orjson.loads(encode(sample)) if not isinstance(sample, dict) else sample
    path = data.draw(st.sampled_from(_paths(obj)))
    raw = orjson.dumps(_mutated(obj, path, new, delete))
    assert _outcome(raw, accept, careful=False) == _outcome(raw, accept, careful=True)


@pytest.mark.parametrize("field", ["orderId", "productId"])
def test_an_id_ending_in_a_newline_is_refused(field: str) -> None:
    msg = orjson.loads(encode(SAMPLES[StockReserved][0]))
    msg["data"][field] += "\n"
    err = reason(orjson.dumps(msg))
    assert err.kind == "validation" and err.message.startswith(f"data.{field}: ")


# What the versions before (pydantic models) wrote into the saga's state for these orders: the
# digest of what each asks for. A redelivered order must match it after an upgrade.
STORED_DIGESTS = {
    b'{"eventType":"OrderPlaced","eventId":"e-1","timestamp":"2024-08-15T10:30:00Z","data":{'
    b'"orderId":"o-1","customerId":"c-1","items":[{"productId":"p-1","quantity":2,"price":29.99}'
    b'],"totalAmount":59.98}}': "45f524d551ca87527e8a8662",
    b'{"eventType":"OrderPlaced","eventId":"e-2","timestamp":"2024-08-15T10:30:00+02:00","data":'
    b'{"orderId":"o-2","items":[{"productId":"p-1","quantity":1}],"totalAmount":0}}': (
        "6f00170501011453f7679378"
    ),
    b'{"eventType":"OrderPlaced","eventId":"e-3","timestamp":"2024-08-15T10:30:00.123456Z","data"'
    b':{"orderId":"o:3@x","customerId":"c.9","items":[{"productId":"a","quantity":10000,"price":'
    b'0.30000000000000004},{"productId":"b","quantity":3,"price":1e-05},{"productId":"c",'
    b'"quantity":1,"price":999999999.99}],"totalAmount":1000000000}}': "e17f5c015c47d98658eadbe3",
    b'{"eventType":"OrderPlaced","eventId":"e-4","timestamp":"2024-08-15T10:30:00Z","data":{'
    b'"orderId":"o-4","customerId":"c-4","items":[{"productId":"p-1","quantity":2,"price":100}],'
    b'"totalAmount":200.5,"extra":"ignored"}}': "de92d47cbae17b56f69b31e5",
}


@pytest.mark.parametrize("raw", list(STORED_DIGESTS), ids=lambda r: r[50:60].decode())
def test_an_orders_content_digest_is_the_one_stored_before(raw: bytes) -> None:
    event = decode(raw)
    assert isinstance(event, OrderPlaced)
    assert content_digest(event) == STORED_DIGESTS[raw]


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (1_700_000_000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (1_700_000_000_123, datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
        ("2024-08-15", datetime(2024, 8, 15)),
        ("2024-08-15T10:30Z", datetime(2024, 8, 15, 10, 30, tzinfo=UTC)),
        ("2024-08-15 10:30:00Z", datetime(2024, 8, 15, 10, 30, tzinfo=UTC)),
    ],
    ids=["unix-seconds", "unix-millis", "date", "no-seconds", "space"],
)
def test_times_other_producers_write_are_read_as_before(written: object, read: datetime) -> None:
    """Not RFC 3339, but always read (the versions before parsed times with pydantic)."""
    msg = orjson.loads(encode(SAMPLES[OrderConfirmed][0]))
    msg["timestamp"] = msg["data"]["placedAt"] = written
    event = decode(orjson.dumps(msg))
    assert isinstance(event, OrderConfirmed)
    assert event.timestamp == read and event.data.placedAt == read
    v1 = seed(1)
    v1["timestamp"] = written
    assert decode(orjson.dumps(v1)).timestamp == read

"""Event contracts: every event as a frozen msgspec Struct with its constraints, the upcasters from
older versions (the seed's flat v1 OrderPlaced, v2 outcomes without items), and the codec that
turns raw Kafka bytes into validated events (or an EventError with a reason).

Each event type has a version: the default of its `schemaVersion`. Old versions keep decoding:
an upcaster turns version N into N+1 until the current one. Newer versions than this code knows
are read as the current one (unknown fields are ignored), so a rolling upgrade keeps working.

The checks are msgspec's, declared on the fields (`Meta`: lengths, patterns, ranges; strict
types: no "12.5" for a number, no true for a count) and run while the bytes are parsed; the few
rules across fields are each struct's `__post_init__`. The same declarations give the JSON
Schema files in schemas/ (`json_schemas`). What the encoder writes: the event type first, then
the fields in declaration order, an empty optional field (None) left out.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, TypeVar, Union

import msgspec
import orjson
from msgspec import Meta, Struct, field
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from orderstream.errors import EventError

MAX_EVENT_BYTES = 64 * 1024
SCHEMA_VERSION = 2  # the envelope's version; an event type may be newer (see its schemaVersion)
OUTCOME_VERSION = 3  # v3 added data.items to OrderConfirmed / OrderRejected / OrderCancelled
_NAMESPACE = uuid.UUID("6f1c7a52-5d4b-4a8e-9a56-3c1f0f6a9e21")
_NAMESPACE_BYTES = _NAMESPACE.bytes

# `\Z`, not `$`: Python's `$` also matches before a final newline ("p-1\n"); the JSON Schema
# says `$` (json_schemas), which means the end there.
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*\Z"
Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=_ID_PATTERN)]
Quantity = Annotated[int, Meta(ge=1, le=10_000)]
Money = Annotated[float, Meta(ge=0, le=1_000_000_000)]  # a number: no "12.5", no true
Timestamp = Annotated[datetime, Meta(extra_json_schema={"format": "date-time"})]


def event_id(*parts: str) -> str:
    """Deterministic event id: the same logical event always gets the same id, so re-sends dedup.

    The UUID v5 of the parts joined by U+001F in _NAMESPACE, computed without building a UUID object
    (most of its cost; several ids per order): SHA-1 of namespace + name, the version (5) and
    variant (RFC 4122) bits set, the first 16 bytes in 8-4-4-4-12 hex."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(Struct, frozen=True, kw_only=True):
    """A part of an event. Tolerant reader: unknown fields are ignored, so producers can add
    fields (schema evolution)."""


class OrderItem(_Model, frozen=True, kw_only=True):
    productId: Id
    quantity: Quantity
    price: Money = 0.0


Items = Annotated[list[OrderItem], Meta(min_length=1, max_length=100)]


def _distinct_products(items: list[OrderItem]) -> None:
    seen = [i.productId for i in items]
    if len(set(seen)) != len(seen):
        raise ValueError("each productId may appear once per order; sum the quantities")


class OrderPlacedData(_Model, frozen=True, kw_only=True):
    orderId: Id
    customerId: Id = "anonymous"
    items: Items
    totalAmount: Money

    def __post_init__(self) -> None:
        _distinct_products(self.items)


class _Envelope(_Model, frozen=True, kw_only=True, tag_field="eventType", tag=True):
    """An event: its type (the class name, written first as `eventType`), id, version, time
    and cause, and its `data`."""

    eventType: ClassVar[str]
    eventId: Annotated[str, Meta(min_length=1, max_length=128)]
    schemaVersion: int = SCHEMA_VERSION
    timestamp: Timestamp
    causationId: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.eventType = cls.__name__


class OrderPlaced(_Envelope, frozen=True, kw_only=True):
    data: OrderPlacedData


class OrderPlacedV1(_Model, frozen=True, kw_only=True):
    """The flat shape of the seed's KafkaJS order service; upcast to OrderPlaced on input."""

    eventType: Literal["OrderPlaced"] = "OrderPlaced"
    orderId: Id
    customerId: Id = "anonymous"
    items: Items
    totalAmount: Money
    timestamp: Timestamp

    def __post_init__(self) -> None:
        _distinct_products(self.items)


def upcast_v1(v1: OrderPlacedV1, raw: bytes) -> OrderPlaced:
    """v1 has no event id: derive one from the content so a re-sent v1 event is a duplicate."""
    data = OrderPlacedData(
        orderId=v1.orderId, customerId=v1.customerId, items=v1.items, totalAmount=v1.totalAmount
    )
    return OrderPlaced(eventId=event_id("v1", raw.decode()), timestamp=v1.timestamp, data=data)


# --- inventory -------------------------------------------------------------------------------


class _OrderLine(_Model, frozen=True, kw_only=True):
    """One product line of one order: what stock commands and their answers are about."""

    orderId: Id
    productId: Id
    quantity: Quantity


class StockLine(_OrderLine, frozen=True, kw_only=True):
    # The line's unit price (as OrderPlaced items'), set on CommitStock: the inventory records
    # the sale when the commit sells the hold. A commit without it (sent before it existed)
    # counts its units and order with revenue 0. Reserve and release leave it out.
    price: Money | None = None


class ReserveStock(_Envelope, frozen=True, kw_only=True):
    data: StockLine


class ReleaseStock(_Envelope, frozen=True, kw_only=True):
    data: StockLine


class CommitStock(_Envelope, frozen=True, kw_only=True):
    data: StockLine


class StockCommits(_Model, frozen=True, kw_only=True):
    # The record's key: the first commit's product. Every commit's product belongs to this
    # key's partition of inventory-requests (they are batched by partition).
    productId: Id
    commits: Annotated[list[CommitStock], Meta(min_length=1, max_length=10_000)]


class CommitStockBatch(_Envelope, frozen=True, kw_only=True):
    """The commits a saga worker decided between two offset commits, for the products of one
    partition of inventory-requests, in the order decided: one record instead of one per order
    line. Each commit is applied as if it had come alone, at this record's offset."""

    data: StockCommits


class StockAdjustmentData(_Model, frozen=True, kw_only=True):
    adjustmentId: Id
    productId: Id
    delta: Annotated[int, Meta(ge=-1_000_000, le=1_000_000)]
    reason: Literal["restock", "correction"] = "restock"

    def __post_init__(self) -> None:
        if self.delta == 0:
            raise ValueError("delta must not be 0")


class StockAdjusted(_Envelope, frozen=True, kw_only=True):
    data: StockAdjustmentData


class StockResult(_OrderLine, frozen=True, kw_only=True):
    reason: str | None = None


class StockReserved(_Envelope, frozen=True, kw_only=True):
    data: StockResult


class StockRejected(_Envelope, frozen=True, kw_only=True):
    data: StockResult


# --- payment ---------------------------------------------------------------------------------


class PaymentRequestData(_Model, frozen=True, kw_only=True):
    orderId: Id
    customerId: Id
    amount: Money


class PaymentRequested(_Envelope, frozen=True, kw_only=True):
    data: PaymentRequestData


class PaymentResult(_Model, frozen=True, kw_only=True):
    orderId: Id
    amount: Money
    attempts: int = 1
    chargeId: str | None = None
    reason: str | None = None


class PaymentSucceeded(_Envelope, frozen=True, kw_only=True):
    data: PaymentResult


class PaymentFailed(_Envelope, frozen=True, kw_only=True):
    data: PaymentResult


# --- saga ------------------------------------------------------------------------------------

TerminalStatus = Literal["CONFIRMED", "REJECTED", "CANCELLED"]


class OrderOutcome(_Model, frozen=True, kw_only=True):
    orderId: Id
    customerId: Id
    status: TerminalStatus
    reason: str | None = None
    totalAmount: Money
    placedAt: Timestamp
    # v3: what the order asked for, so read models (sales per product) need no join.
    items: Annotated[list[OrderItem], Meta(max_length=100)] = field(default_factory=list)


class _OutcomeEnvelope(_Envelope, frozen=True, kw_only=True):
    schemaVersion: int = OUTCOME_VERSION
    data: OrderOutcome


class OrderConfirmed(_OutcomeEnvelope, frozen=True, kw_only=True):
    pass


class OrderRejected(_OutcomeEnvelope, frozen=True, kw_only=True):
    pass


class OrderCancelled(_OutcomeEnvelope, frozen=True, kw_only=True):
    pass


class SagaTimeoutData(_Model, frozen=True, kw_only=True):
    orderId: Id
    step: str


class SagaTimedOut(_Envelope, frozen=True, kw_only=True):
    data: SagaTimeoutData


InventoryCommand: TypeAlias = ReserveStock | ReleaseStock | CommitStock | CommitStockBatch
InventoryInput: TypeAlias = InventoryCommand | StockAdjusted
InventoryEvent: TypeAlias = StockReserved | StockRejected
PaymentEvent: TypeAlias = PaymentSucceeded | PaymentFailed
StatusEvent: TypeAlias = OrderConfirmed | OrderRejected | OrderCancelled
SagaInput: TypeAlias = OrderPlaced | StockReserved | StockRejected | PaymentEvent | SagaTimedOut
Event: TypeAlias = (
    OrderPlaced
    | InventoryInput
    | InventoryEvent
    | PaymentRequested
    | PaymentEvent
    | StatusEvent
    | SagaTimedOut
)

ALL_EVENTS: tuple[type[_Envelope], ...] = (
    OrderPlaced,
    ReserveStock,
    ReleaseStock,
    CommitStock,
    CommitStockBatch,
    StockAdjusted,
    StockReserved,
    StockRejected,
    PaymentRequested,
    PaymentSucceeded,
    PaymentFailed,
    OrderConfirmed,
    OrderRejected,
    OrderCancelled,
    SagaTimedOut,
)
_BY_TYPE: dict[str, type[_Envelope]] = {cls.eventType: cls for cls in ALL_EVENTS}


def version_of(cls: type[_Envelope]) -> int:
    """The current schema version of an event type."""
    (version,) = (f.default for f in msgspec.structs.fields(cls) if f.name == "schemaVersion")
    return int(version)


VERSIONS: dict[str, int] = {name: version_of(cls) for name, cls in _BY_TYPE.items()}

# --- upcasters: one step from version N to N+1 of an event type, on the parsed JSON -----------

Upcaster: TypeAlias = Callable[[dict[str, Any]], dict[str, Any]]


def _outcome_v2_to_v3(obj: dict[str, Any]) -> dict[str, Any]:
    """A v2 outcome did not list the order's items: v3 readers see none (such orders count in
    a customer's history, not in sales per product)."""
    data = obj.get("data")
    items = {"items": [], **data} if isinstance(data, dict) else data
    return {**obj, "schemaVersion": 3, "data": items}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    (name, 2): _outcome_v2_to_v3 for name in ("OrderConfirmed", "OrderRejected", "OrderCancelled")
}


def upcast(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Apply the upcasters from the message's version up to the current one (a v2 envelope of
    the seeds has no schemaVersion: 2)."""
    version = obj.get("schemaVersion", SCHEMA_VERSION)
    while isinstance(version, int) and (event_type, version) in UPCASTERS:
        obj = UPCASTERS[(event_type, version)](obj)
        version = obj["schemaVersion"]
    return obj


def _load_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        if "utf-8" in text.lower():
            raise EventError("invalid_utf8", text) from None
        if "recursion" in text.lower() or "depth" in text.lower():
            raise EventError("too_deep", "JSON nested deeper than 1024 levels") from None
        raise EventError("invalid_json", text) from None


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")


def validation_message(exc: msgspec.ValidationError) -> str:
    """msgspec's error as 'where: what' ("data.items.0.quantity: Expected `int` >= 1"; a missing
    field: "data.productId: Field required")."""
    m = _AT.match(str(exc))
    msg, path = (m["msg"], m["path"] or "") if m else (str(exc), "")
    parts = [p for p in re.split(r"\.|\[(\d+)\]", path) if p]
    missing = _MISSING.match(msg)
    if missing:
        parts.append(missing["name"])
        msg = "Field required"
    return f"{'.'.join(parts) or '(root)'}: {msg}"


S = TypeVar("S", bound=Struct)


def validate(obj: Any, cls: type[S]) -> S:
    """Parsed JSON to a validated `cls` (EventError "validation" with the reason)."""
    try:
        return msgspec.convert(obj, cls)
    except msgspec.ValidationError as exc:
        raise EventError("validation", validation_message(exc)) from None


# Every event type, told apart by `eventType` (a union of tagged structs needs the tag; a
# single tagged type would take a message without one).
_DECODER: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Union[ALL_EVENTS])  # noqa: UP007


def decode(raw: bytes | None, accept: tuple[str, ...] | None = None) -> Event:
    """Bytes from Kafka to a validated event; `accept` limits the event types a topic may carry.

    An event of its type's current version is parsed and checked in one pass. Anything else
    (an older version to upcast, the v1 shape, bytes that are refused) takes the careful way,
    which says why it is refused."""
    if raw is None:
        raise EventError("empty", "message has no value")
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError("too_large", f"{len(raw)} bytes, the limit is {MAX_EVENT_BYTES}")
    try:
        event = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return _decode_carefully(raw, accept)
    etype = event.eventType
    if (accept is not None and etype not in accept) or (etype, event.schemaVersion) in UPCASTERS:
        return _decode_carefully(raw, accept)
    return event


def _decode_carefully(raw: bytes, accept: tuple[str, ...] | None) -> Event:
    obj = _load_json(raw)
    if not isinstance(obj, dict):
        raise EventError("validation", f"expected a JSON object, got {type(obj).__name__}")
    etype = obj.get("eventType")
    if not isinstance(etype, str) or etype not in _BY_TYPE:
        raise EventError("unknown_event_type", f"eventType {str(etype)[:64]!r} is not known")
    if accept is not None and etype not in accept:
        raise EventError("unknown_event_type", f"{etype} does not belong on this topic")
    obj = _lenient_times(obj)
    if etype == "OrderPlaced" and "data" not in obj:
        return upcast_v1(validate(obj, OrderPlacedV1), raw)
    return validate(upcast(etype, obj), _BY_TYPE[etype])  # type: ignore[return-value]


_LENIENT_TIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def _lenient_times(obj: dict[str, Any]) -> dict[str, Any]:
    """The times other producers write that are not RFC 3339 but were always read (Unix
    seconds or milliseconds, a date alone, no seconds: "2024-08-15T10:30Z"), in RFC 3339: the
    event's `timestamp` and an outcome's `data.placedAt`. What pydantic's datetime reads."""

    def lenient(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return value
        try:
            return _LENIENT_TIME.validate_python(value).isoformat()
        except PydanticValidationError:
            return value  # refused as it is, with msgspec's reason

    data = obj.get("data")
    if "timestamp" in obj:
        obj = {**obj, "timestamp": lenient(obj["timestamp"])}
    if isinstance(data, dict) and "placedAt" in data:
        obj = {**obj, "data": {**data, "placedAt": lenient(data["placedAt"])}}
    return obj


_encoder = msgspec.json.Encoder()


def _nullable_fields() -> re.Pattern[bytes]:
    """`,"name":null` of every field whose default is None, in any event's struct."""
    names: set[str] = set()
    todo: list[Any] = [*ALL_EVENTS, OrderPlacedV1]
    seen: set[Any] = set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for f in msgspec.structs.fields(cls):
            if f.default is None:
                names.add(f.encode_name)
            todo.extend(_structs_in(f.type))
    return re.compile(f',"({"|".join(sorted(names))})":null'.encode())


def _structs_in(tp: Any) -> list[Any]:
    """The Struct types a field's type refers to (through Annotated, list, unions)."""
    if isinstance(tp, type) and issubclass(tp, Struct):
        return [tp]
    return [s for arg in getattr(tp, "__args__", ()) for s in _structs_in(arg)]


_NULLS = _nullable_fields()


def encode(event: _Envelope) -> bytes:
    """The event as JSON bytes, an empty optional field (None) left out.

    msgspec writes such a field as `null`; no field of an event is first in its object (the
    type is first in an event, an id in each part), and inside a JSON string a quote is always
    escaped, so `,"name":null` in the bytes is always that field, which is cut out."""
    return _NULLS.sub(b"", _encoder.encode(event))


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every event type's current version (and of the accepted v1 input shape),
    by file name."""
    schemas = {f"{name}.v{VERSIONS[name]}.json": _schema(cls) for name, cls in _BY_TYPE.items()}
    schemas["OrderPlaced.v1.json"] = _schema(OrderPlacedV1)
    return schemas


def _schema(cls: type[Struct]) -> dict[str, Any]:
    """msgspec's schema of `cls`, its own definition at the top, the id pattern as JSON Schema
    reads it (`$` is the end), the event type a constant that may be left out (as the schemas
    released before said)."""
    _, defs = msgspec.json.schema_components([cls], ref_template="#/$defs/{name}")
    defs = orjson.loads(orjson.dumps(defs).replace(b"\\\\Z", b"$"))
    schema: dict[str, Any] = defs.pop(cls.__name__)
    for name, definition in ((cls.__name__, schema), *defs.items()):
        if name in _BY_TYPE:  # an event (also inside another: a batch's commits)
            etype = {"const": name, "default": name, "type": "string"}
            definition["properties"]["eventType"] = etype
            definition["required"].remove("eventType")
    if defs:
        schema["$defs"] = defs
    return schema

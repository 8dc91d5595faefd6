"""The peer: the inventory-reservation stage written with Quix Streams (RocksDB state).

Runs in its own virtualenv (see bench/requirements-quix.txt: quixstreams pins pydantic below
the project's version), so it imports nothing from the project; quixstreams is imported only in
main(), which lets the project's tests check the rules. Same input as orderstream's
inventory agent and the same rules (orderstream/domain/inventory.py), written the idiomatic Quix
way: JSON into plain dicts, a hand-written shape check, one stateful apply, results to a topic.
"""

from __future__ import annotations

import argparse
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
# as orderstream/contracts/events.py: the same ids
NAMESPACE = uuid.UUID("6f1c7a52-5d4b-4a8e-9a56-3c1f0f6a9e21")
RECENT_ADJUSTMENTS = 256
COMMIT_INTERVAL_S = 1.0  # as the Faust app's broker_commit_interval


class InvalidCommand(ValueError):
    """Input that does not have the shape of an inventory command."""


def _id(value: Any) -> str:
    if not isinstance(value, str) or not ID.match(value):
        raise InvalidCommand(f"not an id: {value!r}")
    return value


def _int(value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise InvalidCommand(f"not an integer in [{low}, {high}]: {value!r}")
    return value


def validated(value: Any) -> tuple[str, dict[str, Any]]:
    """(eventType, data) of a well-formed StockAdjusted or ReserveStock; InvalidCommand if not."""
    if not isinstance(value, dict) or not isinstance(value.get("data"), dict):
        raise InvalidCommand("expected an event object with a data object")
    if not isinstance(value.get("eventId"), str) or not isinstance(value.get("timestamp"), str):
        raise InvalidCommand("eventId and timestamp are required")
    datetime.fromisoformat(value["timestamp"])
    etype, data = value.get("eventType"), value["data"]
    _id(data.get("productId"))
    if etype == "ReserveStock":
        _id(data.get("orderId"))
        _int(data.get("quantity"), 1, 10_000)
    elif etype == "StockAdjusted":
        _id(data.get("adjustmentId"))
        _int(data.get("delta"), -1_000_000, 1_000_000)
    else:
        raise InvalidCommand(f"eventType {etype!r} does not belong on this topic")
    return etype, data


def result(cmd: dict[str, Any], reason: str | None) -> dict[str, Any]:
    line = cmd["data"]
    kind = "StockRejected" if reason else "StockReserved"
    data = {
        "orderId": line["orderId"],
        "productId": line["productId"],
        "quantity": line["quantity"],
    }
    if reason:
        data["reason"] = reason
    return {
        "eventId": str(
            uuid.uuid5(NAMESPACE, "\x1f".join((kind, line["orderId"], line["productId"])))
        ),
        "schemaVersion": 2,
        "timestamp": datetime.now(UTC).isoformat(),
        "causationId": cmd["eventId"],
        "eventType": kind,
        "data": data,
    }


def reserve(
    stock: dict[str, Any] | None, cmd: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """(new stock or None when unchanged, rejection reason or None)."""
    order, qty = cmd["data"]["orderId"], cmd["data"]["quantity"]
    if stock is None:
        return None, "unknown_product"
    if order in stock["holds"]:
        return None, None
    if stock["available"] < qty:
        return None, "out_of_stock"
    holds = {**stock["holds"], order: qty}
    return {
        **stock,
        "available": stock["available"] - qty,
        "held": stock["held"] + qty,
        "holds": holds,
    }, None


def adjust(stock: dict[str, Any] | None, data: dict[str, Any]) -> dict[str, Any] | None:
    stock = stock or {
        "productId": data["productId"],
        "available": 0,
        "held": 0,
        "sold": 0,
        "restocked": 0,
        "holds": {},
        "recentAdjustments": [],
        "applied": {},
    }
    if data["adjustmentId"] in stock["recentAdjustments"]:
        return None
    if stock["available"] + data["delta"] < 0:
        raise InvalidCommand(f"correction {data['delta']} exceeds the stock")
    recent = [*stock["recentAdjustments"], data["adjustmentId"]][-RECENT_ADJUSTMENTS:]
    return {
        **stock,
        "available": stock["available"] + data["delta"],
        "restocked": stock["restocked"] + data["delta"],
        "recentAdjustments": recent,
    }


class Store(Protocol):
    """The part of Quix's per-key State the stage uses."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class Position(Protocol):
    """Where the current record comes from (Quix's MessageContext)."""

    @property
    def topic(self) -> str: ...

    @property
    def offset(self) -> int: ...


def apply_command(value: Any, state: Store, at: Position) -> dict[str, Any] | None:
    """One command: validate, read the product's stock, apply the rule, write it back, answer."""
    etype, data = validated(value)
    stock = state.get("stock")
    if stock is not None and at.offset <= stock["applied"].get(at.topic, -1):
        held = etype == "ReserveStock" and data["orderId"] in stock["holds"]
        return result(value, None) if held else None  # redelivered: answer a reserve again
    answer = None
    if etype == "StockAdjusted":
        new = adjust(stock, data)
    else:
        new, reason = reserve(stock, value)
        answer = result(value, reason)
    if new is not None:
        state.set("stock", {**new, "applied": {**new["applied"], at.topic: at.offset}})
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    from quixstreams import Application, State, message_context

    def handle(value: Any, state: State) -> dict[str, Any] | None:
        return apply_command(value, state, message_context())

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        commit_interval=COMMIT_INTERVAL_S,
        loglevel="WARNING",
    )
    source = app.topic(args.input, key_deserializer="str", value_deserializer="json")
    sink = app.topic(args.output, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.apply(handle, stateful=True).filter(lambda answer: answer is not None)
    sdf.to_topic(sink, key=lambda answer: answer["data"]["orderId"])
    app.run()


if __name__ == "__main__":
    main()

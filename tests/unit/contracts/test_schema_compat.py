"""The compatibility checker on synthetic before/after schemas, on the real committed ones, and on
the committed files (released snapshots, version chain, unreleased versions)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from orderstream.contracts.schema_compat import (
    RELEASED_DIR,
    breaking_changes,
    check,
    parse_name,
    release,
)
from orderstream.contracts.schemas import SCHEMA_DIR

BASE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "orderId": {"type": "string", "maxLength": 64},
        "quantity": {"type": "integer", "minimum": 1},
        "status": {"enum": ["CONFIRMED", "REJECTED"], "type": "string"},
        "eventType": {"const": "OrderConfirmed", "type": "string"},
        "reason": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
    },
    "required": ["orderId", "quantity"],
    "$defs": {"Item": {"type": "object", "properties": {"sku": {"type": "string"}}}},
}


def changed(edit: Any) -> dict[str, Any]:
    new = copy.deepcopy(BASE)
    edit(new)
    return new


def props(schema: dict[str, Any]) -> dict[str, Any]:
    return schema["properties"]  # type: ignore[no-any-return]


COMPATIBLE = {
    "unchanged": lambda s: None,
    "optional field added": lambda s: props(s).update(note={"type": "string"}),
    "integer widened to number": lambda s: props(s)["quantity"].update(type="number"),
    "enum widened": lambda s: props(s)["status"]["enum"].append("CANCELLED"),
    "bound relaxed": lambda s: props(s)["orderId"].update(maxLength=128),
    "made nullable": lambda s: props(s).update(
        orderId={"anyOf": [{"type": "string", "maxLength": 64}, {"type": "null"}]}
    ),
    "required dropped": lambda s: s.update(required=["orderId"]),
    "titles and defaults": lambda s: props(s)["quantity"].update(title="Q", default=1),
}

BREAKING = {
    "field removed": (lambda s: props(s).pop("reason"), "$.reason: field removed"),
    "required field added": (
        lambda s: (props(s).update(channel={"type": "string"}), s["required"].append("channel")),
        "$.channel: new field is now required",
    ),
    "optional made required": (
        lambda s: s["required"].append("reason"),
        "$.reason: optional field is now required",
    ),
    "type changed": (
        lambda s: props(s)["orderId"].update(type="integer"),
        "$.orderId: type changed from ['string'] to ['integer']",
    ),
    "number narrowed to integer": (
        lambda s: props(s)["quantity"].update(type="string"),
        "$.quantity: type changed",
    ),
    "enum narrowed": (
        lambda s: props(s)["status"].update(enum=["CONFIRMED"]),
        "$.status: values no longer allowed: ['REJECTED']",
    ),
    "const changed": (
        lambda s: props(s)["eventType"].update(const="OrderPaid"),
        "$.eventType: values no longer allowed: ['OrderConfirmed']",
    ),
    "max lowered": (
        lambda s: props(s)["orderId"].update(maxLength=10),
        "$.orderId: maxLength lowered from 64 to 10",
    ),
    "min raised": (
        lambda s: props(s)["quantity"].update(minimum=2),
        "$.quantity: minimum raised from 1 to 2",
    ),
    "pattern added": (
        lambda s: props(s)["orderId"].update(pattern="^o-"),
        "$.orderId: pattern changed from 'none' to '^o-'",
    ),
    "null dropped": (
        lambda s: props(s).update(reason={"type": "string"}),
        "$.reason: type changed from ['null'] to ['string']",
    ),
    "nested type changed behind a $ref": (
        lambda s: s["$defs"]["Item"]["properties"]["sku"].update(type="integer"),
        "$.items[].sku: type changed",
    ),
    "closed": (
        lambda s: s.update(additionalProperties=False),
        "$: additional properties are no longer allowed",
    ),
}


@pytest.mark.parametrize("edit", COMPATIBLE.values(), ids=list(COMPATIBLE))
def test_compatible_change_passes(edit: Any) -> None:
    assert breaking_changes(BASE, changed(edit)) == []


@pytest.mark.parametrize(("edit", "expected"), BREAKING.values(), ids=list(BREAKING))
def test_breaking_change_is_named(edit: Any, expected: str) -> None:
    problems = breaking_changes(BASE, changed(edit))

    assert any(p.startswith(expected) for p in problems), problems


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_outcome_v3_is_compatible_with_v2() -> None:
    v2 = load(RELEASED_DIR / "OrderConfirmed.v2.json")
    v3 = load(SCHEMA_DIR / "OrderConfirmed.v3.json")

    assert breaking_changes(v2, v3) == []


def test_a_field_dropped_from_a_real_schema_is_caught() -> None:
    released = load(RELEASED_DIR / "OrderConfirmed.v3.json")
    broken = copy.deepcopy(released)
    del broken["$defs"]["OrderOutcome"]["properties"]["totalAmount"]

    assert breaking_changes(released, broken) == ["$.data.totalAmount: field removed"]


def test_the_seed_reshape_is_the_only_break_between_versions() -> None:
    v1, v2 = load(RELEASED_DIR / "OrderPlaced.v1.json"), load(RELEASED_DIR / "OrderPlaced.v2.json")

    assert breaking_changes(v1, v2), "v1 -> v2 is listed in RESHAPED because it breaks"
    assert check() == []


def write(directory: Path, name: str, schema: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(json.dumps(schema), encoding="utf-8")


def test_check_flags_a_changed_released_version_and_an_unreleased_one(tmp_path: Path) -> None:
    current, released = tmp_path / "schemas", tmp_path / "released"
    write(released, "Thing.v1.json", BASE)
    write(current, "Thing.v1.json", changed(lambda s: props(s).pop("quantity")))
    write(current, "Other.v1.json", BASE)

    problems = check(current, released)

    assert problems == [
        "Other.v1.json is not released: "
        "run python -m orderstream.contracts.schema_compat --release",
        "Thing.v1.json: $.quantity: field removed",
    ]


def test_check_flags_a_new_version_that_breaks_the_previous(tmp_path: Path) -> None:
    current, released = tmp_path / "schemas", tmp_path / "released"
    write(released, "Thing.v1.json", BASE)
    write(current, "Thing.v2.json", changed(lambda s: props(s).pop("status")))

    assert release(current, released) == [released / "Thing.v2.json"]
    assert check(current, released) == ["Thing.v2.json breaks v1: $.status: field removed"]


def test_release_never_overwrites_a_frozen_version(tmp_path: Path) -> None:
    current, released = tmp_path / "schemas", tmp_path / "released"
    write(released, "Thing.v1.json", BASE)
    write(current, "Thing.v1.json", changed(lambda s: props(s).pop("status")))

    assert release(current, released) == []
    assert load(released / "Thing.v1.json") == BASE


def test_parse_name() -> None:
    assert parse_name("OrderConfirmed.v3.json") == ("OrderConfirmed", 3)
    with pytest.raises(ValueError, match=r"<Event>\.v<N>\.json"):
        parse_name("notes.json")

"""The committed JSON Schemas match the models, are valid 2020-12 schemas, accept the seed's
messages and never break a released version; the committed example messages of every version
decode forever."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from orderstream.contracts.events import SCHEMA_VERSION, VERSIONS, decode
from orderstream.contracts.schema_compat import RELEASED_DIR, check
from orderstream.contracts.schemas import SCHEMA_DIR, rendered_schemas, write_schemas

EXAMPLE_DIR = SCHEMA_DIR / "examples"
REGENERATE = (
    "the committed schemas are out of date: run `python -m orderstream.contracts.schemas` and "
    "commit schemas/"
)

# The two message shapes of the seed project, verbatim.
SEED_V1: dict[str, Any] = {
    "eventType": "OrderPlaced",
    "orderId": "12345",
    "items": [{"productId": "P001", "quantity": 2}],
    "totalAmount": 150.00,
    "timestamp": "2023-10-05T12:00:00Z",
}
SEED_V2: dict[str, Any] = {
    "eventId": "uuid-123",
    "eventType": "OrderPlaced",
    "timestamp": "2024-08-15T10:30:00Z",
    "data": {
        "orderId": "order-456",
        "customerId": "customer-789",
        "items": [{"productId": "prod-1", "quantity": 2, "price": 29.99}],
        "totalAmount": 59.98,
    },
}

COMMITTED = sorted(SCHEMA_DIR.glob("*.json"))
RELEASED = sorted(RELEASED_DIR.glob("*.json"))
EXAMPLES = sorted(EXAMPLE_DIR.glob("*.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def validator(schema_file: str) -> Draft202012Validator:
    return Draft202012Validator(load(SCHEMA_DIR / schema_file), format_checker=FormatChecker())


def test_committed_schemas_equal_the_models() -> None:
    generated = rendered_schemas()
    committed = {p.name: p.read_text(encoding="utf-8") for p in COMMITTED}

    assert sorted(committed) == sorted(generated), (
        REGENERATE + " (and delete files it no longer writes)"
    )
    stale = [name for name, text in generated.items() if committed[name] != text]
    assert not stale, f"{REGENERATE}; differing: {', '.join(stale)}"


def test_write_schemas_writes_one_file_per_schema(tmp_path: Path) -> None:
    paths = write_schemas(tmp_path / "out")

    assert sorted(p.name for p in paths) == sorted(rendered_schemas())
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", path.name


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_schema_is_valid_draft_2020_12(path: Path) -> None:
    schema = load(path)

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    ("message", "schema_file"),
    [(SEED_V1, "OrderPlaced.v1.json"), (SEED_V2, f"OrderPlaced.v{SCHEMA_VERSION}.json")],
    ids=["v1-flat", "v2-envelope"],
)
def test_seed_messages_validate_against_their_schema(
    message: dict[str, Any], schema_file: str
) -> None:
    validator(schema_file).validate(message)


@pytest.mark.parametrize(
    ("schema_file", "bad"),
    [
        ("OrderPlaced.v1.json", {**SEED_V1, "items": [{"productId": "P001", "quantity": 0}]}),
        ("OrderPlaced.v1.json", {**SEED_V1, "items": [{"productId": "P001", "quantity": "2"}]}),
        ("OrderPlaced.v1.json", {k: v for k, v in SEED_V1.items() if k != "orderId"}),
        ("OrderPlaced.v2.json", {**SEED_V2, "data": {**SEED_V2["data"], "items": []}}),
        ("OrderPlaced.v2.json", {**SEED_V2, "eventType": "ReserveStock"}),
    ],
    ids=["zero-quantity", "string-quantity", "no-orderId", "no-items", "wrong-type"],
)
def test_schemas_reject_what_the_decoder_rejects(schema_file: str, bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        validator(schema_file).validate(bad)


def test_every_schema_has_an_example() -> None:
    missing = sorted(set(rendered_schemas()) - {p.name for p in EXAMPLES})

    assert not missing, f"add an example message to schemas/examples/ for: {', '.join(missing)}"


def test_every_released_version_has_an_example() -> None:
    missing = sorted({p.name for p in RELEASED} - {p.name for p in EXAMPLES})

    assert not missing, f"keep an example message in schemas/examples/ for: {', '.join(missing)}"


def test_committed_schemas_never_break_a_released_version() -> None:
    problems = check()

    assert not problems, "backward-incompatible schema change:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", RELEASED, ids=lambda p: p.name)
def test_released_schema_is_valid_draft_2020_12(path: Path) -> None:
    Draft202012Validator.check_schema(load(path))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_decodes_to_its_event_type(path: Path) -> None:
    # Examples are never regenerated: once a shape was sent, it must decode for good.
    event_type, version = path.name.removesuffix(".json").split(".v")

    event = decode(path.read_bytes())

    assert type(event).__name__ == event_type
    assert event.eventType == event_type
    assert event.schemaVersion == VERSIONS[event_type], "decoded events are upcast to current"
    if int(version) == 1:
        assert "data" not in load(path), "a v1 example must use the flat v1 shape"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_against_its_released_schema(path: Path) -> None:
    schema = load(RELEASED_DIR / path.name)

    Draft202012Validator(schema, format_checker=FormatChecker()).validate(load(path))

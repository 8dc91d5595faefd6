"""The peer comparison's input and rules: the harness's expected outcomes, orderstream's domain
and the Quix Streams stage (run here without Kafka) agree on the same commands."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from bench.peer import build_peer_input, expected_outcomes, outcome
from bench.quix_inventory import apply_command
from orderstream.contracts.events import decode
from orderstream.domain import inventory
from orderstream.domain.inventory import ProductStock


@dataclass
class At:
    topic: str
    offset: int


class DictState:
    """Quix's per-key state, for one key."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def test_each_product_is_restocked_before_its_first_reservation() -> None:
    data = build_peer_input("r", 400)
    seen_restock: set[bytes] = set()
    for key, value in data.records:
        body = orjson.loads(value)
        if body["eventType"] == "StockAdjusted":
            seen_restock.add(key)
        elif not key.startswith(b"GHOST"):
            assert key in seen_restock
    assert data.reserves == 400 == sum(data.expected.values())


def test_the_input_mixes_every_outcome_and_is_reproducible() -> None:
    data = build_peer_input("r", 2000)
    assert set(data.expected) == {"reserved", "out_of_stock", "unknown_product"}
    assert build_peer_input("r", 2000).expected == data.expected


def test_expected_outcomes_follow_the_reserve_rule() -> None:
    lines = [("o1", "A", 2), ("o2", "A", 2), ("o3", "B", 1), ("o4", "A", 1)]
    assert expected_outcomes({"A": 3}, lines) == Counter(
        reserved=2, out_of_stock=1, unknown_product=1
    )


def test_orderstream_domain_reaches_the_expected_outcomes() -> None:
    data = build_peer_input("r", 1000)
    stocks: dict[str, ProductStock | None] = {}
    got: Counter[str] = Counter()
    for key, value in data.records:
        cmd = decode(value)
        decision = inventory.apply(stocks.get(key.decode()), cmd)  # type: ignore[arg-type]
        if decision.state is not None:
            stocks[key.decode()] = decision.state
        for ev in decision.emit:
            got[outcome(ev.eventType, getattr(ev.data, "reason", None))] += 1
    assert got == data.expected


def test_quix_stage_reaches_the_expected_outcomes_and_answers_redeliveries() -> None:
    data = build_peer_input("r", 1000)
    states: dict[bytes, DictState] = {}
    got: Counter[str] = Counter()
    for offset, (key, value) in enumerate(data.records):
        answer = apply_command(
            orjson.loads(value), states.setdefault(key, DictState()), At("t", offset)
        )
        if answer is not None:
            got[outcome(answer["eventType"], answer["data"].get("reason"))] += 1
    assert got == data.expected
    # Given a reserve that was applied, When it is delivered again, Then the same answer, one hold
    key, value = next(
        (k, v)
        for k, v in reversed(data.records)
        if b"ReserveStock" in v and not k.startswith(b"GHOST")
    )
    state = states[key]
    before = state.get("stock")
    offset = before["applied"]["t"]
    again = apply_command(orjson.loads(value), state, At("t", offset))
    assert state.get("stock") == before
    assert again is None or again["eventType"] == "StockReserved"

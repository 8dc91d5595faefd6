"""Agents apply a partition's records in offset order (app/delivery.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from app import delivery

TP0 = TP("inventory-requests", 0)


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = SimpleNamespace(_committed_offset={TP0: 10}, _unacked_messages=set())
    monkeypatch.setattr(delivery, "app", SimpleNamespace(consumer=fake))
    delivery.forget()
    return fake


class Record:
    def __init__(self, offset: int) -> None:
        self.tp, self.offset, self.acked = TP0, offset, False


def record(offset: int) -> Any:
    return Record(offset)


def test_records_from_the_committed_offset_on_apply_in_order(consumer: Any) -> None:
    assert [delivery.in_order("inventory", record(o)) for o in (10, 11, 12)] == [True] * 3
    assert not delivery.deferring


def test_a_record_past_a_hole_is_deferred_unacknowledged_until_the_hole_comes(
    consumer: Any,
) -> None:
    assert delivery.in_order("inventory", record(10))
    late = record(13)  # 11 and 12 never arrived
    consumer._unacked_messages.add(late)
    assert not delivery.in_order("inventory", late)
    # Faust will not acknowledge it (so never commits over it) nor wait for it
    assert late.acked and late not in consumer._unacked_messages
    assert delivery.deferring == {TP0}  # the watchdog seeks the partition back
    # Read again from the commit: 10 is a re-read (its watermark decides), then 11.. in order
    assert [delivery.in_order("inventory", record(o)) for o in (10, 11, 12, 13)] == [True] * 4


def test_each_agent_keeps_its_own_place(consumer: Any) -> None:
    assert delivery.in_order("saga", record(10))
    assert delivery.in_order("saga", record(11))
    assert not delivery.in_order("payment", record(11))  # payment has not seen 10


def test_the_committed_offset_is_the_floor_of_what_is_expected(consumer: Any) -> None:
    assert delivery.in_order("inventory", record(10))
    consumer._committed_offset[TP0] = 20  # another worker had the partition meanwhile
    assert delivery.in_order("inventory", record(20))

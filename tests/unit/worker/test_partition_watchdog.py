"""The watchdog resumes a partition only when its fetch is stuck, never when an agent is slow."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from orderstream.worker.app import app
from orderstream.worker.timers import partition_watchdog

A, B = TP("inventory-requests", 0), TP("payment-requests", 0)


def _channel(queued: int, maxsize: int = 10) -> Any:
    return SimpleNamespace(
        queue=SimpleNamespace(qsize=lambda: queued, full=lambda: queued >= maxsize)
    )


@pytest.mark.parametrize(
    ("index", "buffered", "busy_a"),
    [
        ({A: [_channel(0)], B: [_channel(0)]}, set(), False),  # nothing queued: may be stuck
        ({A: [_channel(0)], B: [_channel(0)]}, {A}, False),  # Faust's flag, queue empty: stale
        ({A: [_channel(3)], B: [_channel(0)]}, set(), True),  # its agent has records to do
        ({A: [_channel(0)], B: [_channel(10)]}, set(), True),  # the fetch loop waits on B's
    ],
)
def test_busy_partitions_are_not_taken_for_stalled(
    monkeypatch: pytest.MonkeyPatch, index: dict[Any, Any], buffered: set[Any], busy_a: bool
) -> None:
    monkeypatch.setattr(app.topics, "_tp_index", index)
    consumer = SimpleNamespace(_buffered_partitions=buffered)
    assert partition_watchdog._busy(consumer, A) is busy_a


@pytest.mark.parametrize(
    ("fetched", "active", "held"),
    [
        (set(), {A}, False),  # nothing fetched for it: may be stuck
        ({A}, {A}, True),  # fetched, Faust asks for it: its turn comes
        ({A}, {B}, False),  # fetched, but Faust never asks for it: stuck
    ],
)
def test_fetched_records_waiting_their_turn_are_not_a_stall(
    monkeypatch: pytest.MonkeyPatch, fetched: set[Any], active: set[Any], held: bool
) -> None:
    monkeypatch.setattr(app.topics, "_tp_index", {A: [_channel(0)], B: [_channel(0)]})
    consumer = SimpleNamespace(
        _buffered_partitions=set(),
        _get_active_partitions=lambda: active,
        stopped_on_purpose=lambda tp: False,
    )
    assert partition_watchdog._held_back(consumer, A, fetched) is held


def test_a_partition_stopped_on_purpose_is_not_a_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.topics, "_tp_index", {A: [_channel(0)]})
    consumer = SimpleNamespace(
        _buffered_partitions=set(),
        _get_active_partitions=lambda: set(),
        stopped_on_purpose=lambda tp: tp == A,  # the intake's bound, or waiting for a rewind
    )
    assert partition_watchdog._held_back(consumer, A, set()) is True

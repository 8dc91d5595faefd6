"""The watchdog resumes a partition only when its fetch is stuck, never when an agent is slow."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from agents import partition_watchdog
from app.application import app

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

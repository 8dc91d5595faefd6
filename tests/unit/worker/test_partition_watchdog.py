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


@pytest.mark.parametrize("rebalancing", [False, True])
async def test_no_partition_is_resumed_while_a_rebalance_moves_them(
    monkeypatch: pytest.MonkeyPatch, rebalancing: bool
) -> None:
    """Mid-rebalance the flow is stopped on purpose; resumed, it fetched for the old assignment
    and a batch of it was dropped (records committed over in the chaos test)."""
    recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
    completed = SimpleNamespace(is_set=lambda: True)
    monkeypatch.setattr(recovery, "completed", completed)
    monkeypatch.setattr(recovery, "in_recovery", False)
    monkeypatch.setattr(app, "rebalancing", rebalancing)

    async def highwaters(*tps: Any) -> dict[Any, int]:
        return {A: 10}

    async def positions(consumer: Any, tps: list[Any]) -> tuple[dict[Any, int], set[Any]]:
        return {A: 5}, set()

    resumed: list[Any] = []

    async def unstick(consumer: Any, stalled: list[Any], ends: Any) -> None:
        resumed.extend(tp for tp, _ in stalled)

    monkeypatch.setattr(app.consumer, "highwaters", highwaters)
    monkeypatch.setattr(partition_watchdog, "_watched", lambda consumer: [A])
    monkeypatch.setattr(partition_watchdog, "_positions", positions)
    monkeypatch.setattr(partition_watchdog, "_held_back", lambda *args: False)
    monkeypatch.setattr(partition_watchdog, "_unstick", unstick)
    monkeypatch.setitem(partition_watchdog._still, A, (5, partition_watchdog.CHECKS - 1))
    await partition_watchdog._check()
    assert resumed == ([] if rebalancing else [A])

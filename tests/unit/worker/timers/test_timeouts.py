"""The saga deadline timer: a passed deadline fires a SagaTimedOut, unless the step's topics
have a backlog being worked through (then the deadline restarts and nothing is sent)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import orderstream.worker.timers.timeouts as timer
from orderstream.contracts.events import Event, SagaTimedOut
from orderstream.observability import metrics
from orderstream.worker.group_offsets import Progress
from orderstream.worker.open_orders import open_orders
from tests.unit.worker.conftest import capture_publish

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def sent(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[Event]]:
    out = capture_publish(monkeypatch, timer)
    monkeypatch.setattr(open_orders, "stale", False)
    monkeypatch.setattr(open_orders, "backlogs", {})
    open_orders.deadlines.clear()
    yield out
    open_orders.deadlines.clear()


def broker_says(monkeypatch: pytest.MonkeyPatch, committed: int, lag: int) -> None:
    """Every partition of the saga's step topics at this committed offset and lag."""

    async def progress(tps: Any) -> dict[tuple[str, int], Progress]:
        return {(tp.topic, tp.partition): Progress(committed, committed + lag) for tp in tps}

    monkeypatch.setattr(timer.group_offsets, "progress", progress)


def held_count(step: str) -> float:
    return metrics.SAGA_DEADLINES_HELD.labels(step)._value.get()  # type: ignore[no-any-return]


async def test_a_passed_deadline_fires_when_nothing_waits(
    sent: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker_says(monkeypatch, committed=10, lag=0)
    open_orders.deadlines["o-1"] = ("RESERVING", time.time() - 1)
    open_orders.deadlines["o-2"] = ("PAYING", time.time() + 60)

    await timer._fire()

    assert [(type(e), e.data.orderId) for e in sent] == [(SagaTimedOut, "o-1")]
    assert open_orders.deadlines["o-1"][1] > time.time() + 50  # fired once, not again at each tick


async def test_a_passed_deadline_restarts_while_its_backlog_moves(
    sent: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    open_orders.deadlines["o-1"] = ("RESERVING", time.time() - 1)
    before = held_count("RESERVING")
    broker_says(monkeypatch, committed=10, lag=5_000)

    await timer._fire()

    assert sent == []
    assert open_orders.deadlines["o-1"][1] > time.time() + 50
    assert held_count("RESERVING") == before + 1

    # The backlog stops moving (the stage is down): the deadline fires at its next pass.
    open_orders.deadlines["o-1"] = ("RESERVING", time.time() - 1)
    await timer._fire()

    assert [e.data.orderId for e in sent] == ["o-1"]


async def test_deadlines_fire_when_the_broker_does_not_answer(
    sent: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def progress(tps: Any) -> dict[tuple[str, int], Progress]:
        raise ConnectionError("broker away")

    monkeypatch.setattr(timer.group_offsets, "progress", progress)
    open_orders.deadlines["o-1"] = ("PAYING", time.time() - 1)

    await timer._fire()

    assert [e.data.orderId for e in sent] == ["o-1"]

"""Waiting for a run's records: it ends at the count, when the process under test dies, and
(only when asked) when the count stops growing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bench import kafka_io
from bench.errors import BenchError


def fake_topic(monkeypatch: pytest.MonkeyPatch, counts: list[int]) -> list[int]:
    """The topic's record count at each check (the last one repeats); the counts polled."""
    polled: list[int] = []

    @asynccontextmanager
    async def probe(bootstrap: str) -> AsyncIterator[Any]:
        yield None

    async def end_offsets(consumer: Any, topics: Iterable[str]) -> dict[str, int]:
        have = counts[min(len(polled), len(counts) - 1)]
        polled.append(have)
        return dict.fromkeys(topics, have)

    monkeypatch.setattr(kafka_io, "probe", probe)
    monkeypatch.setattr(kafka_io, "end_offsets", end_offsets)
    return polled


async def test_returns_once_the_count_is_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    polled = fake_topic(monkeypatch, [0, 5, 10])
    samples: list[int] = []
    await kafka_io.wait_for_records(
        "b", "t", 10, timeout_s=30, alive=lambda: True, on_poll=lambda: samples.append(1)
    )
    assert polled == [0, 5, 10] and len(samples) == 3


async def test_a_stalled_count_aborts_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_topic(monkeypatch, [0, 3])
    with pytest.raises(BenchError, match="stuck at 3/10"):
        await kafka_io.wait_for_records(
            "b", "t", 10, timeout_s=30, alive=lambda: True, stall_s=0.5, label="x"
        )
    fake_topic(monkeypatch, [0, 3])
    with pytest.raises(BenchError, match="3/10 on t after 1s"):  # the overall timeout instead
        await kafka_io.wait_for_records("b", "t", 10, timeout_s=1, alive=lambda: True)


async def test_a_dead_process_aborts(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_topic(monkeypatch, [2])
    with pytest.raises(BenchError, match="exited at 2/10"):
        await kafka_io.wait_for_records("b", "t", 10, timeout_s=30, alive=lambda: False)

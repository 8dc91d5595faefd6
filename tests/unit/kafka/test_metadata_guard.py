"""orderstream/kafka/metadata_guard.py: an unexpected error in an aiokafka client's metadata task
no longer leaves every wait for metadata waiting forever."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka.client import AIOKafkaClient

from orderstream.kafka import metadata_guard
from orderstream.observability import metrics


def _client(failures: list[BaseException]) -> tuple[AIOKafkaClient, list[int]]:
    """A client (never connected) whose metadata requests raise `failures` in turn, then
    succeed; returns it and the list of its update rounds."""
    client = AIOKafkaClient(bootstrap_servers="127.0.0.1:1", retry_backoff_ms=10)
    rounds: list[int] = []

    async def update(cluster: Any, topics: Any) -> bool:
        rounds.append(len(rounds))
        if failures:
            raise failures.pop(0)
        return True

    client._metadata_update = update  # type: ignore[method-assign]
    return client, rounds


async def _updated(client: AIOKafkaClient) -> bool:
    client._sync_task = asyncio.ensure_future(client._md_synchronizer())
    try:
        return bool(await asyncio.wait_for(client.force_metadata_update(), 2))
    finally:
        client._sync_task.cancel()
        await asyncio.gather(client._sync_task, return_exceptions=True)


def _restarts(name: str) -> float:
    return float(metrics.KAFKA_METADATA_RESTARTS.labels(client=name)._value.get())


async def test_aiokafka_alone_waits_forever_after_an_unexpected_error() -> None:
    """The bug the guard is for: without it the waiter is never answered."""
    client, _ = _client([RuntimeError("unable to perform operation on <TCPTransport closed=True>")])
    with pytest.raises(asyncio.TimeoutError):
        await _updated(client)


async def test_a_guarded_client_answers_the_waiter_after_an_unexpected_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = RuntimeError("unable to perform operation on <TCPTransport closed=True>")
    client, rounds = _client([error, error])
    before = _restarts("test-client")
    assert metadata_guard.guard(client, "test-client") is client
    with caplog.at_level(logging.ERROR, logger=metadata_guard.__name__):
        assert await _updated(client) is True
    assert len(rounds) == 3  # two failed rounds, then the update the waiter asked for
    assert _restarts("test-client") - before == 2
    logged = [r for r in caplog.records if "metadata updates failed" in r.getMessage()]
    assert len(logged) == 2 and logged[0].exc_info is not None  # the traceback, each time


async def test_guarding_twice_wraps_once() -> None:
    client, rounds = _client([RuntimeError("x")])
    metadata_guard.guard(client, "test-twice")
    metadata_guard.guard(client, "test-twice")
    before = _restarts("test-twice")
    assert await _updated(client) is True
    assert _restarts("test-twice") - before == 1
    assert len(rounds) == 2


async def test_cancelling_the_task_stops_it() -> None:
    client, _ = _client([])
    metadata_guard.guard(client, "test-cancel")
    task = asyncio.ensure_future(client._md_synchronizer())
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()

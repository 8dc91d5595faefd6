"""Broker faults under load: the broker stops for ~10 s, and once dies by kill -9. The workers
reconnect on their own (nobody restarts them) and the run ends correct: the broker kept its data."""

from __future__ import annotations

import asyncio
import time

import pytest

from devtools import demo
from devtools.broker import LocalBroker
from tests.integration.conftest import Stack
from tests.integration.test_pipeline import _assert_run_correct

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_workers_ride_out_a_broker_outage_and_a_broker_crash(
    stack: type[Stack], kafka: LocalBroker
) -> None:
    s = stack()
    workers = s.workers("w1", "w2")
    outages: list[str] = []

    async def faults() -> None:
        await asyncio.sleep(5)
        # A clean stop for ~10 s while orders keep coming (the feeder's producer retries).
        t0 = time.monotonic()
        await asyncio.to_thread(kafka.stop)
        await asyncio.sleep(10)
        await asyncio.to_thread(kafka.start)
        outages.append(f"stopped {time.monotonic() - t0:.1f}s")
        await asyncio.sleep(10)
        # A crash: kill -9, then back.
        t0 = time.monotonic()
        await asyncio.to_thread(kafka.kill)
        await asyncio.sleep(3)
        await asyncio.to_thread(kafka.start)
        outages.append(f"killed {time.monotonic() - t0:.1f}s")

    async def scenario() -> demo.DemoResult:
        run = asyncio.create_task(demo.run(s.settings, 8000, rate=200, quiet=True, timeout_s=600))
        await faults()
        return await run

    result = asyncio.run(scenario())
    _assert_run_correct(result)
    assert all(w.running for w in workers), "the workers must survive without a restart"
    assert len(outages) == 2
    print(f"\nbroker faults: {outages}; {result.settled} orders settled in {result.elapsed_s:.0f}s")

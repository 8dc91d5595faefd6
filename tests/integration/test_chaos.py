"""Crashes and rebalances: two workers share the partitions while one is killed again and again.

Nothing acknowledged is lost and nothing is applied twice: every order ends in exactly one
terminal state, stock is conserved, no order is charged twice, and the lag drains to zero.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from app import demo
from app.verify import consumer_lag
from app.workers import WorkerProcess
from tests.integration.conftest import Stack
from tests.integration.test_pipeline import _assert_run_correct
from tests.integration.webclient import get

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ORDERS = 30_000
RATE = 250.0  # orders/s offered: the run lasts ~2 minutes, time for many crashes
KILLS = 7


def _log_size(proc: WorkerProcess) -> int:
    return proc.log_path.stat().st_size if proc.log_path and proc.log_path.exists() else 0


def _kill_during_recovery(proc: WorkerProcess) -> bool:
    """Start the worker and kill -9 it as soon as it begins restoring its tables (in bulk, or
    through Faust's replay).

    Returns whether the kill landed before recovery completed."""
    assert proc.log_path is not None
    mark = _log_size(proc)
    proc.start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        text = Path(proc.log_path).read_bytes()[mark:]
        if any(
            m in text for m in (b"bulk restore: reading", b"Restoring state", b"Recovery complete")
        ):
            landed = b"Recovery complete" not in text
            proc.kill()
            return landed
        time.sleep(0.02)
    raise AssertionError("the worker never began recovery")


def test_kill_minus_nine_under_load_loses_nothing(own_stack: type[Stack]) -> None:
    stack = own_stack
    s = stack()
    workers = s.workers("w1", "w2")
    kills: list[str] = []

    async def chaos() -> None:
        await asyncio.sleep(6)
        for n in range(KILLS):
            victim = workers[n % 2]
            await asyncio.to_thread(victim.kill)
            if n == 2:  # come back with no local state: rebuild everything from changelogs
                shutil.rmtree(victim.datadir)
                kills.append(f"{victim.name}: wiped")
            elif n == 4:  # die again while restoring the tables (from nothing: it takes time)
                shutil.rmtree(victim.datadir)
                landed = await asyncio.to_thread(_kill_during_recovery, victim)
                kills.append(f"{victim.name}: killed in recovery={landed}")
            else:
                kills.append(f"{victim.name}: killed")
            await asyncio.to_thread(victim.start)
            await asyncio.to_thread(victim.wait_ready, 120)
            await asyncio.sleep(8)

    async def scenario() -> demo.DemoResult:
        run = asyncio.create_task(
            demo.run(s.settings, ORDERS, rate=RATE, quiet=True, timeout_s=800)
        )
        await chaos()
        return await run

    started = time.monotonic()
    result = asyncio.run(scenario())
    settled_s = time.monotonic() - started

    # Then: nothing lost, nothing doubled, stock conserved
    _assert_run_correct(result)
    assert all(len(c) == 1 for c in result.report.charges.values())
    assert len(kills) == KILLS and any("wiped" in k for k in kills)
    assert any(k.endswith("killed in recovery=True") for k in kills), kills

    # And the consumer lag drains to zero within a bounded time
    drained_at = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lag = asyncio.run(consumer_lag(s.settings))
        if sum(lag.values()) == 0:
            drained_at = time.monotonic()
            break
        time.sleep(1)
    assert drained_at is not None, f"lag did not drain: {lag}"

    # And both workers' web views tell the same story (each routes to the key's owner)
    w1, w2 = workers
    sample = [o.order_id for o in result.scenario.orders[:: ORDERS // 300]]
    paths = [f"/orders/{o}" for o in sample] + [f"/inventory/{p}" for p in result.scenario.restocks]
    for path in paths:
        a, b = get(w1, path), get(w2, path)
        assert a.status == b.status == 200, (path, a.status, b.status)
        assert a.json == b.json, path
    for o in sample:
        assert get(w1, f"/orders/{o}").json["status"] == result.report.status_of(o), o
    print(
        f"\nchaos: {ORDERS} orders, kills: {kills}; settled in {settled_s:.0f}s, "
        f"lag 0 after {drained_at - started - settled_s:.1f}s more; "
        f"dead letters {result.report.dead_letters}"
    )

"""A paused worker (SIGSTOP past its session timeout, then SIGCONT) writes nothing stale.

While it is stopped, its partitions move to the other worker, which restores their tables and
carries on. When it wakes up it still holds records and state from before, and records handed
to the Kafka client before the pause are still sent: in at-least-once mode they would land after
the new owner's writes. In exactly-once mode (ORDERSTREAM_PROCESSING_GUARANTEE=exactly_once,
orderstream/faust_ext/transactions.py) every record of a task goes into the task's transaction, and
the new owner's producer for the task fenced the paused one: what it sends after waking is refused
by the broker and never visible to read_committed readers. Stock runs short of demand, so a
stale reservation or a double charge would show: every order has exactly one outcome, no
product is oversold, money moves at most once per order (the gateway's ledger), no dead letters.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from devtools import demo
from tests.integration.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ORDERS = 4_000
RATE = 100.0
SESSION_TIMEOUT_S = 6.0
PAUSE_S = SESSION_TIMEOUT_S + 9  # past the session timeout: the group moves its partitions


def test_a_worker_paused_past_its_session_timeout_writes_nothing_stale(
    own_stack: type[Stack], tmp_path: Path
) -> None:
    s = own_stack(gateway_ledger=tmp_path / "gateway-ledger.jsonl")
    env = {"session_timeout_s": SESSION_TIMEOUT_S, "processing_guarantee": "exactly_once"}
    sleeper = s.worker("w1", wait=False, **env)
    other = s.worker("w2", wait=False, **env)
    sleeper.wait_ready()
    other.wait_ready()
    assert sleeper.proc is not None and sleeper.log_path is not None

    async def pause() -> None:
        await asyncio.sleep(8)  # orders flowing through both workers
        os.kill(sleeper.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        await asyncio.sleep(PAUSE_S)
        os.kill(sleeper.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]

    async def scenario() -> demo.DemoResult:
        run = asyncio.create_task(
            demo.run(s.settings, ORDERS, rate=RATE, quiet=True, timeout_s=400, stock_ratio=0.5)
        )
        await pause()
        return await run

    started = time.monotonic()
    result = asyncio.run(scenario())
    report, figures = result.report, result.figures
    log = Path(sleeper.log_path).read_text(errors="replace")
    print(
        f"\npaused worker: {ORDERS} orders, w1 stopped {PAUSE_S:.0f}s "
        f"(session timeout {SESSION_TIMEOUT_S:.0f}s), settled in "
        f"{time.monotonic() - started:.0f}s\npaused worker: {figures.line()}"
    )
    # Then the paused worker noticed, and the group rebalanced: each task it held before the
    # pause was fenced by the broker under the new owner's producer, whether the rebalance gave
    # it back (its stale producer is refused: "fenced by the broker") or to the other worker
    # (its stale producer stops: "revoked", and the new owner's fences it)
    assert "this worker was paused for" in log
    after = log[log.index("this worker was paused for") :]
    assert "fenced by the broker" in after or "revoked; its producer stops" in after, after
    assert "fence lifted" in after
    # And every order has one outcome, stock is conserved and not oversold, no dead letters
    assert result.problems == [], demo.summary(result)
    assert result.settled == ORDERS
    for product, restocked in result.scenario.restocks.items():
        stock = report.stock[product]
        assert stock.restocked == restocked, product
        assert 0 <= stock.sold <= restocked and stock.available >= 0, (product, stock)
        assert stock.held == 0 and stock.holds == {}, (product, stock)
    # And money moved at most once per order (no kill -9 here: no replay is explained)
    assert report.ledger is not None and report.ledger.torn_lines == 0
    assert figures.charge_calls - figures.replayed_calls == sum(
        report.status_of(o.order_id) == "CONFIRMED" for o in result.scenario.orders
    )
    assert sleeper.running and other.running  # both recovered unattended

"""The order pipeline end to end: real broker, real faust workers, thousands of orders."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections import Counter

import pytest

from devtools import demo
from devtools.workers import WorkerProcess
from orderstream.worker.gateway import attempt_fails
from tests.integration.conftest import Stack
from tests.integration.webclient import get

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BULK_LOG = re.compile(r"bulk restore: (\d+) records")


def _sold_per_product(result: demo.DemoResult) -> Counter[str]:
    """What the expected outcomes say each product must have sold."""
    sold: Counter[str] = Counter()
    for order in result.scenario.orders:
        if order.expected == "CONFIRMED":
            for product, qty in order.items:
                sold[product] += qty
    return sold


def _wait_placed(worker: WorkerProcess, orders: int, timeout_s: float = 60.0) -> None:
    """Wait until the worker has taken up `orders` orders (its Prometheus counter)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in get(worker, "/metrics").text.splitlines():
            if (
                line.startswith("orderstream_orders_placed_total ")
                and float(line.split()[1]) >= orders
            ):
                return
        time.sleep(0.2)
    raise AssertionError(f"{worker.name} did not take up {orders} orders in {timeout_s:.0f} s")


def _assert_run_correct(result: demo.DemoResult) -> None:
    assert result.problems == [], demo.summary(result)
    assert result.settled == len(result.scenario.orders)
    expected = _sold_per_product(result)
    for product, restocked in result.scenario.restocks.items():
        stock = result.report.stock[product]
        # Given every restock once and every confirmed order once, the shelf adds up exactly.
        assert stock.restocked == restocked, product
        assert stock.sold == expected[product], product
        assert stock.held == 0 and stock.holds == {}, product


def test_orders_reach_their_expected_terminal_state(stack: type[Stack]) -> None:
    # Given one worker
    s = stack()
    s.worker()
    # When 3,000 orders flow (single and multi-item, in stock, sold out, unknown, declined)
    result = asyncio.run(demo.run(s.settings, 3000, quiet=True))
    # Then each order reaches the state the scenario expects, exactly once, and stock adds up
    _assert_run_correct(result)
    assert {"CONFIRMED", "REJECTED", "CANCELLED"} <= set(result.scenario.expected)
    assert result.report.dead_letters == 0


@pytest.mark.parametrize("mode", ["inline", "agent"])
def test_transient_gateway_failures_are_retried_then_compensated(
    stack: type[Stack], mode: str
) -> None:
    # Given a gateway that fails 40% of attempts transiently and two attempts per payment,
    # charged by the saga in its step (inline) or by the payment agent
    s = stack(payment_transient_failure_rate=0.4, payment_max_attempts=2, payment_mode=mode)
    s.worker()
    # When 1,500 orders flow
    result = asyncio.run(demo.run(s.settings, 1500, quiet=True))
    # Then an order whose attempts all fail is cancelled with its holds released (the scenario
    # knows which: the simulated gateway is deterministic), every other one is unaffected
    _assert_run_correct(result)
    lost = [
        o for o in result.scenario.orders if all(attempt_fails(o.order_id, a, 0.4) for a in (1, 2))
    ]
    assert len(lost) > 100  # 0.4 * 0.4 of the orders: enough to see compensation at work
    assert all(result.report.status_of(o.order_id) in ("CANCELLED", "REJECTED") for o in lost)
    # And each order was charged at most once, whichever agent charged it
    assert all(len(c) == 1 for c in result.report.charges.values())


def test_every_event_delivered_twice_changes_nothing(stack: type[Stack]) -> None:
    # Given a worker whose every publish goes out twice (an at-least-once producer retrying)
    s = stack(chaos_duplicate_sends=True)
    s.worker()
    # When every order and restock is also sent twice by the order service
    result = asyncio.run(demo.run(s.settings, 2000, quiet=True, copies=2))
    # Then the outcome is exactly what a single delivery gives
    _assert_run_correct(result)
    assert all(len(c) == 1 for c in result.report.charges.values())


@pytest.mark.parametrize("bulk_min", [1, 0], ids=["bulk-restore", "faust-replay"])
def test_worker_restart_with_wiped_data_rebuilds_tables_from_changelogs(
    stack: type[Stack], bulk_min: int
) -> None:
    # Given a worker processing a stream of orders (its tables restored in bulk, or by Faust's
    # own record-by-record replay)
    s = stack(recovery_bulk_min=bulk_min)
    worker = s.worker()

    async def scenario() -> demo.DemoResult:
        run = asyncio.create_task(demo.run(s.settings, 3000, rate=400, quiet=True))
        # (enough taken up that the tables hold thousands of changelog records, however
        # slow the machine: a fixed wait restored 708 on a busy one, and 500 orders 873 once
        # the read models and the stock wrote back once per commit)
        await asyncio.to_thread(_wait_placed, worker, 1200)
        # When it dies mid-stream, loses its local RocksDB data, and comes back
        await asyncio.to_thread(worker.kill)
        # (its tables live in RocksDB on disk, not in memory)
        assert any(worker.datadir.rglob("CURRENT")), f"no RocksDB files in {worker.datadir}"
        shutil.rmtree(worker.datadir)
        await asyncio.to_thread(worker.start)
        await asyncio.to_thread(worker.wait_ready)
        return await run

    result = asyncio.run(scenario())
    # Then the tables were rebuilt from the changelogs and the run ends correct
    _assert_run_correct(result)
    assert worker.log_path is not None
    restored = [int(n) for n in BULK_LOG.findall(worker.log_path.read_text())]
    if bulk_min:
        assert restored and restored[-1] > 1000, restored
    else:
        assert restored == []

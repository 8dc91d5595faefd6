"""Crashes and rebalances: two workers share the partitions while one is killed again and again,
and stock runs short of demand, so many orders must be rejected.

Nothing acknowledged is lost and nothing is applied twice: every order ends in exactly one
terminal event, no product is oversold and each sold exactly what its confirmed orders took,
money moves at most once per order on the gateway's ledger (a repeated call is explained only
by the kill -9 of the worker that made the previous one), there are no dead letters, and the lag
drains to zero. Re-drives by deadline are reported apart from first-time settles.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from devtools import demo
from devtools.simulator import SimOrder, restock_events
from devtools.verify import collect, consumer_lag, unexplained_charge_calls
from devtools.workers import WorkerProcess
from orderstream.contracts.events import encode
from orderstream.contracts.topics import registry
from orderstream.domain.inventory import ProductStock
from tests.integration.conftest import Stack
from tests.integration.webclient import get

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ORDERS = 30_000
RATE = 250.0  # orders/s offered: the run lasts ~2 minutes, time for many crashes
KILLS = 7
PRODUCTS = 20  # the simulator's catalog (SKU-0000 ...)
RESTOCK_UNITS = 3  # more of every product after each kill, while orders flow
STOCK_RATIO = 0.5  # restock half of the units ordered


def _log_size(proc: WorkerProcess) -> int:
    return proc.log_path.stat().st_size if proc.log_path and proc.log_path.exists() else 0


def _kill(proc: WorkerProcess, killed: set[int]) -> None:
    """kill -9, remembering the pid (the gateway's ledger names the caller by pid)."""
    if proc.proc is not None and proc.running:
        killed.add(proc.proc.pid)
    proc.kill()


def _kill_during_recovery(proc: WorkerProcess, killed: set[int]) -> bool:
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
            _kill(proc, killed)
            return landed
        time.sleep(0.02)
    raise AssertionError("the worker never began recovery")


async def _restock_during_run(s: Stack, round_no: int, extra: Counter[str]) -> None:
    """RESTOCK_UNITS more of every product, sent to stock-adjustments by a plain client while
    orders flow: the stock changes by its command log only, whatever the interleaving."""
    products = {f"SKU-{i:04d}": RESTOCK_UNITS for i in range(PRODUCTS)}
    topic = registry(s.settings)["stock_adjustments"].name
    producer = AIOKafkaProducer(bootstrap_servers=s.settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for adj in restock_events(f"chaos-{round_no}", products):
            await producer.send(topic, encode(adj), key=adj.data.productId.encode())
        await producer.flush()
    finally:
        await producer.stop()
    extra.update(products)


def _stock_once_restocked(s: Stack, restocked: dict[str, int]) -> dict[str, ProductStock]:
    """The stock read back once every product holds the restocks sent (or after 60 s). The
    last round's restock goes out after its kill, and a quick machine settles the last order
    before it is applied: the report taken then is a moment early for it."""
    deadline = time.monotonic() + 60
    while True:
        stock = asyncio.run(collect(s.settings, [])).stock
        done = all(p in stock and stock[p].restocked >= n for p, n in restocked.items())
        if done or time.monotonic() > deadline:
            return stock
        time.sleep(1.0)


def _customer(order: SimOrder) -> str:
    return order.payload.split(b'"customerId":"')[1].split(b'"')[0].decode()


def _read_model_mismatches(
    worker: WorkerProcess, sold: Counter[str], placed: Counter[str]
) -> list[str]:
    """Where the read models (served by `worker`, each key by its owner) differ from what the
    orders did: a product's sales from its confirmed orders, a customer's history from the
    orders they placed (each settles once)."""
    wrong = []
    for sku, units in sorted(sold.items()):
        got = get(worker, f"/sales/{sku}?hours=3").json["total"]["units"]
        if got != units:
            wrong.append(f"sales {sku}: {got} units, confirmed orders took {units}")
    for customer, count in sorted(placed.items()):
        body = get(worker, f"/customers/{customer}/orders?limit=100").json
        listed = len(body["orders"])
        if body["totals"]["orders"] != count or listed != min(count, 100):
            wrong.append(
                f"{customer}: {body['totals']['orders']} orders ({listed} listed), placed {count}"
            )
    return wrong


def _sold_by_confirmed_orders(result: demo.DemoResult) -> Counter[str]:
    """Units per product of the orders that ended CONFIRMED (from what the orders asked for)."""
    sold: Counter[str] = Counter()
    for order in result.scenario.orders:
        if result.report.status_of(order.order_id) == "CONFIRMED":
            for product, qty in order.items:
                sold[product] += qty
    return sold


def test_kill_minus_nine_under_load_with_short_stock_loses_nothing(
    own_stack: type[Stack], tmp_path: Path
) -> None:
    stack = own_stack
    s = stack(gateway_ledger=tmp_path / "gateway-ledger.jsonl")
    workers = s.workers("w1", "w2")
    kills: list[str] = []
    killed: set[int] = set()
    restocked_later: Counter[str] = Counter()

    async def chaos() -> None:
        await asyncio.sleep(6)
        for n in range(KILLS):
            victim = workers[n % 2]
            await asyncio.to_thread(_kill, victim, killed)
            if n == 2:  # come back with no local state: rebuild everything from changelogs
                shutil.rmtree(victim.datadir)
                kills.append(f"{victim.name}: wiped")
            elif n == 4:  # die again while restoring the tables (from nothing: it takes time)
                shutil.rmtree(victim.datadir)
                landed = await asyncio.to_thread(_kill_during_recovery, victim, killed)
                kills.append(f"{victim.name}: killed in recovery={landed}")
            else:
                kills.append(f"{victim.name}: killed")
            await asyncio.to_thread(victim.start)
            await _restock_during_run(s, n, restocked_later)
            await asyncio.to_thread(victim.wait_ready, 120)
            await asyncio.sleep(8)

    async def scenario() -> demo.DemoResult:
        run = asyncio.create_task(
            demo.run(
                s.settings, ORDERS, rate=RATE, quiet=True, timeout_s=800, stock_ratio=STOCK_RATIO
            )
        )
        await chaos()
        return await run

    started = time.monotonic()
    result = asyncio.run(scenario())
    settled_s = time.monotonic() - started
    report, figures = result.report, result.figures
    rejected_short = sum(
        o.expected != "REJECTED" and report.reasons.get(o.order_id, "").startswith("out_of_stock")
        for o in result.scenario.orders
    )
    print(
        f"\nchaos: {ORDERS} orders, stock {STOCK_RATIO:.0%} of demand, kills: {kills}; settled "
        f"in {settled_s:.0f}s; {rejected_short} orders rejected for want of stock\n"
        f"chaos: {figures.line()}"
    )
    for kind, message in report.dead_letter_samples.items():
        print(f"chaos: dead letter {kind}: {message}")
    for problem in result.problems[:20]:
        print(f"chaos: problem: {problem}")

    # Then every order has exactly one outcome, one it may reach, and the invariants hold
    # (one terminal event, stock conserved and not oversold, charges agree with the ledger)
    assert result.problems == [], demo.summary(result)
    assert result.settled == ORDERS
    assert len(kills) == KILLS and any("wiped" in k for k in kills)
    assert any(k.endswith("killed in recovery=True") for k in kills), kills

    # And stock ran short, yet no product was oversold: each sold what its confirmed orders took
    assert rejected_short > ORDERS // 10, demo.summary(result)
    sold = _sold_by_confirmed_orders(result)
    assert sum(restocked_later.values()) == KILLS * PRODUCTS * RESTOCK_UNITS
    wanted = {p: first + restocked_later[p] for p, first in result.scenario.restocks.items()}
    stocks = _stock_once_restocked(s, wanted)
    for product, restocked in wanted.items():
        stock = stocks[product]
        assert stock.restocked == restocked, product
        assert stock.sold == sold[product] <= restocked, (product, stock)
        assert stock.available >= 0 and stock.held == 0 and stock.holds == {}, (product, stock)

    # And money moved at most once per order: a repeated charge call comes only from a worker
    # that took over from one killed after calling the gateway (same idempotency key)
    assert report.ledger is not None and report.ledger.torn_lines == 0
    assert figures.charge_calls - figures.replayed_calls == sum(
        report.status_of(o.order_id) == "CONFIRMED" for o in result.scenario.orders
    )
    assert unexplained_charge_calls(report, killed) == []

    # And no dead letters: a reply that arrives before the state it answers is rebuilt waits
    assert report.dead_letters == 0, (dict(report.dead_letter_kinds), report.dead_letter_samples)

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
        assert get(w1, f"/orders/{o}").json["status"] == report.status_of(o), o
    print(f"chaos: lag 0 after {drained_at - started - settled_s:.1f}s more")

    # And the read models agree with what the orders did: each product's sales, each
    # customer's history (at least once their records come again after a kill; their rules
    # drop what they hold already)
    placed = Counter(_customer(o) for o in result.scenario.orders)
    wrong = _read_model_mismatches(w1, sold, placed)
    print(f"chaos: read models: {len(sold)} products, {len(placed)} customers, {len(wrong)} wrong")
    assert wrong == [], wrong[:20]

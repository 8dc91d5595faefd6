"""The simulated order service at work: feed orders, follow them to their terminal status,
then check the invariants and print a summary."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devtools.simulator import Scenario, build_scenario, restock_events
from devtools.verify import (
    RunFigures,
    RunReport,
    collect,
    figures,
    invariant_violations,
    leaked_holds,
)
from orderstream.contracts.events import encode
from orderstream.contracts.topics import changelog_topic, registry, route
from orderstream.domain.inventory import ProductStock
from orderstream.domain.state import decode_state
from orderstream.errors import OrderstreamError
from orderstream.kafka.auth import client_options
from orderstream.kafka.reader import partitions_of, read_topic
from orderstream.settings import Settings

# Raw messages to put on the order topic after the order with this index: (key, value).
Injected = dict[int, list[tuple[bytes, bytes]]]

HOLDS_QUIET_S = 60.0  # how long settled orders' holds may take to be committed or released


@dataclass
class DemoResult:
    scenario: Scenario
    report: RunReport
    elapsed_s: float
    settled: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def figures(self) -> RunFigures:
        return figures(self.report)


async def _status_consumer(settings: Settings) -> AIOKafkaConsumer:
    """Positioned at the current end of order-status, so it sees only what comes next."""
    name = registry(settings)["order_status"].name
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",  # what a downstream consumer sees
        **client_options(settings),
    )
    await consumer.start()
    tps = [TopicPartition(name, p) for p in sorted(await partitions_of(consumer, name))]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    return consumer


async def feed(
    producer: AIOKafkaProducer,
    settings: Settings,
    scenario: Scenario,
    run_id: str,
    rate: float | None,
    copies: int = 1,
    inject: Injected | None = None,
) -> None:
    """Restock, then send the orders (each `copies` times, to prove duplicates are harmless),
    with any injected raw messages after the order of their index."""
    inject = inject or {}
    topics = registry(settings)
    for adj in restock_events(run_id, scenario.restocks):
        role, key = route(adj)
        for _ in range(copies):
            await producer.send(topics[role].name, encode(adj), key=key.encode())
    await producer.flush()
    await wait_restocked(settings, run_id, set(scenario.restocks))
    order_topic = topics["orders"].name
    start = time.monotonic()
    for n, order in enumerate(scenario.orders):
        for _ in range(copies):
            await producer.send(order_topic, order.payload, key=order.order_id.encode())
        for raw_key, value in inject.get(n, ()):
            await producer.send(order_topic, value, key=raw_key)
        if rate and n % 50 == 0:
            ahead = n / rate - (time.monotonic() - start)
            if ahead > 0:
                await asyncio.sleep(ahead)
    await producer.flush()


async def wait_restocked(
    settings: Settings, run_id: str, products: set[str], timeout_s: float = 120.0
) -> None:
    """Until the inventory has applied this run's restocks: stock comes before the orders
    (the two travel on different topics, and Kafka orders only within a partition)."""
    deadline = time.monotonic() + timeout_s
    changelog = changelog_topic(settings, "inventory")
    while time.monotonic() < deadline:
        applied = set()
        for rec in await read_topic(settings, changelog):
            if rec.value is not None:
                stock = decode_state(rec.value, ProductStock)
                if f"{run_id}-{stock.productId}" in stock.recentAdjustments:
                    applied.add(stock.productId)
        if applied >= products:
            return
        await asyncio.sleep(0.3)
    raise OrderstreamError(f"restocks not applied after {timeout_s:.0f}s: is a worker running?")


def _progress_line(settled: int, total: int | None, counts: Counter[str], rate: float) -> str:
    mix = "  ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    of = f"/{total}" if total else ""
    return f"settled {settled}{of}  {rate:8.1f} orders/s  {mix}"


async def run(
    settings: Settings,
    n_orders: int,
    *,
    rate: float | None = None,
    timeout_s: float = 600.0,
    quiet: bool = False,
    seed: int = 7,
    copies: int = 1,
    inject: Callable[[Scenario], Injected] | None = None,
    totals: Counter[str] | None = None,
    stock_ratio: float = 1.0,
) -> DemoResult:
    """Feed n orders and wait for all of them to settle; then collect and check everything.

    `stock_ratio` < 1 restocks only that share of what the orders ask for
    (devtools/simulator.py)."""
    run_id = f"r{int(time.time() * 1000) % 10**10}"
    scenario = build_scenario(
        run_id,
        n_orders,
        seed=seed,
        payment_limit=settings.payment_limit_per_order,
        transient_failure_rate=settings.payment_transient_failure_rate,
        payment_attempts=settings.payment_max_attempts,
        stock_ratio=stock_ratio,
    )
    wanted = {o.order_id for o in scenario.orders}
    consumer = await _status_consumer(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=10,
        acks="all",
        enable_idempotence=True,
        max_batch_size=256 * 1024,
        **client_options(settings),
    )
    await producer.start()
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    start = last_print = time.monotonic()
    last_settled = 0
    extra = inject(scenario) if inject else None
    feeder = asyncio.create_task(feed(producer, settings, scenario, run_id, rate, copies, extra))
    try:
        while len(seen) < len(wanted) and time.monotonic() - start < timeout_s:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for msgs in batch.values():
                for rec in msgs:
                    body = rec.value.decode()
                    if run_id not in body:
                        continue
                    data = orjson.loads(body)["data"]
                    if data["orderId"] in wanted and data["orderId"] not in seen:
                        seen.add(data["orderId"])
                        counts[data["status"]] += 1
                        if totals is not None:
                            totals[data["status"]] += 1
            now = time.monotonic()
            if not quiet and now - last_print >= 1.0:
                rate_now = (len(seen) - last_settled) / (now - last_print)
                print(_progress_line(len(seen), len(wanted), counts, rate_now), flush=True)
                last_print, last_settled = now, len(seen)
            if feeder.done() and feeder.exception():
                raise feeder.exception()  # type: ignore[misc]
        elapsed = time.monotonic() - start
        await feeder
    finally:
        feeder.cancel()
        await producer.stop()
        await consumer.stop()
    report = await _settled_report(settings, scenario, wanted)
    # The commit or release of a hold goes out with the outcome and is applied a moment later
    # (later still behind a backlog): a hold is leaked only if it outlives a quiet spell.
    quiet_until = time.monotonic() + HOLDS_QUIET_S
    while leaked_holds(report, wanted) and time.monotonic() < quiet_until:
        await asyncio.sleep(2.0)
        report = await _settled_report(settings, scenario, wanted)
    problems = invariant_violations(report, wanted)
    leaked = leaked_holds(report, wanted)
    if leaked:
        problems.append(f"{len(leaked)} holds of settled orders left open, e.g. {leaked[:3]}")
    wrong = [
        o.order_id
        for o in scenario.orders
        if (status := report.status_of(o.order_id)) is not None
        and not o.accepts(status, report.reasons.get(o.order_id))
    ]
    if wrong:
        problems.append(f"{len(wrong)} orders ended in an unexpected state, e.g. {wrong[:3]}")
    return DemoResult(scenario, report, elapsed, len(seen), problems)


async def _settled_report(
    settings: Settings, scenario: Scenario, wanted: set[str], timeout_s: float = 180.0
) -> RunReport:
    """Collect once the holds of this run are all committed or released (commands in flight)."""
    products = set(scenario.restocks)
    deadline = time.monotonic() + timeout_s
    while True:
        report = await collect(settings, wanted)
        open_holds = [
            s
            for p, s in report.stock.items()
            if p in products and any(o in wanted for o in s.holds)
        ]
        if not open_holds or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.5)


def summary(result: DemoResult) -> str:
    """The table printed at the end of a demo run."""
    report, sc = result.report, result.scenario
    got = Counter(report.status_of(o.order_id) or "NONE" for o in sc.orders)
    lines = ["", f"{'status':<12}{'expected':>10}{'settled':>10}"]
    for status in ("CONFIRMED", "REJECTED", "CANCELLED", "NONE"):
        if sc.expected[status] or got[status]:
            lines.append(f"{status:<12}{sc.expected[status]:>10}{got[status]:>10}")
    lines += ["", f"{'product':<12}{'restocked':>10}{'available':>10}{'held':>8}{'sold':>8}"]
    for p in sorted(sc.restocks):
        s = report.stock.get(p)
        if s is not None:
            lines.append(f"{p:<12}{s.restocked:>10}{s.available:>10}{s.held:>8}{s.sold:>8}")
    tput = result.settled / result.elapsed_s if result.elapsed_s else 0.0
    if sc.short_stock:
        lines.append(
            f"short stock: restocked {sc.stock_ratio:.0%} of the units ordered; "
            "expected is with enough stock, the rest may be REJECTED out of stock"
        )
    lines += [
        "",
        f"orders {len(sc.orders)}  settled {result.settled}  in {result.elapsed_s:.1f}s"
        f"  = {tput:.0f} orders/s  dead letters (topic total) {report.dead_letters}",
        result.figures.line(),
    ]
    lines.append("invariants: OK" if result.ok else "invariants: BROKEN")
    lines += [f"  - {p}" for p in result.problems[:20]]
    return "\n".join(lines)

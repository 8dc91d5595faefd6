"""Scenario 4: end-to-end latency at a steady offered rate (OrderPlaced -> terminal status).

A paced producer stamps each OrderPlaced as it sends it; a consumer follows order-status. Two
measures per order, all on this machine's clock: the terminal event's own timestamp minus its
placedAt (the OrderPlaced timestamp), and the status record's Kafka timestamp minus the send time.

Where the time goes, per hop: after the run the raw topics are read back and each order's
records placed by their Kafka timestamps (the moment each producer took the record): the order,
the saga's first reserve, the inventory's last answer before the outcome, the outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import kafka_io, procstat
from bench.checks import pipeline_problems
from bench.config import BenchConfig
from bench.errors import BenchError
from bench.report import percentile
from bench.stack import WORKER_READY_TIMEOUT_S, RunStack
from bench.throughput import MIN_RATE, scenario_for
from devtools.demo import wait_restocked
from devtools.simulator import Scenario, restock_events
from orderstream.contracts.events import encode
from orderstream.contracts.topics import route
from orderstream.kafka.reader import partitions_of

GRACE_S = 30.0  # after the last send, how long an order may take and still count as measured


@dataclass(frozen=True)
class LatencyRun:
    offered_per_s: float
    achieved_per_s: float  # what the paced producer really sent
    measured: int  # orders after the warm-up
    unsettled: int  # of those, still open GRACE_S after the last send: counted as lower bounds
    event_ms: tuple[float, float, float]  # p50, p99, max of event timestamp - placedAt
    record_ms: tuple[float, float, float]  # p50, p99, max of record timestamp - send time
    peak_rss_mb: float
    problems: list[str]
    hops_ms: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # HOPS

    @property
    def p50_ms(self) -> float:
        return self.event_ms[0]

    @property
    def p99_ms(self) -> float:
        return self.event_ms[1]

    @property
    def max_ms(self) -> float:
        return self.event_ms[2]

    @property
    def record_p50_ms(self) -> float:
        return self.record_ms[0]

    @property
    def record_p99_ms(self) -> float:
        return self.record_ms[1]

    @property
    def record_max_ms(self) -> float:
        return self.record_ms[2]


#: The hops an order's latency is split into (`hop_spans`), in the order it crosses them.
HOPS = ("order -> reserve", "reserve -> last answer", "last answer -> outcome")
ANSWERS = ("StockReserved", "StockRejected")


def hop_spans(
    placed: dict[str, int],
    reserves: list[tuple[str, int]],
    answers: list[tuple[str, int]],
    outcomes: dict[str, int],
) -> dict[str, list[float]]:
    """Per hop (HOPS), the ms each order spent in it, from record timestamps (ms): `placed` and
    `outcomes` by order id, `reserves` and `answers` as (order id, timestamp) per record. An
    order counts when it has all four; its last answer is the latest one not after its outcome
    (a rejection settles the order before the other lines answer)."""
    first_reserve: dict[str, int] = {}
    for oid, ts in reserves:
        first_reserve[oid] = min(ts, first_reserve.get(oid, ts))
    last_answer: dict[str, int] = {}
    for oid, ts in answers:
        if oid in outcomes and ts <= outcomes[oid]:
            last_answer[oid] = max(ts, last_answer.get(oid, ts))
    spans: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for oid, done in outcomes.items():
        if oid not in placed or oid not in first_reserve or oid not in last_answer:
            continue
        marks = (placed[oid], first_reserve[oid], last_answer[oid], done)
        for hop, start, end in zip(HOPS, marks, marks[1:], strict=False):
            spans[hop].append(float(end - start))
    return spans


async def _hops(bootstrap: str, stack: RunStack, orders: set[str]) -> dict[str, list[float]]:
    """The hop spans of `orders`, read back from the raw topics."""

    def by_order(records: list[Any], types: tuple[str, ...] | None) -> list[tuple[str, int]]:
        found = []
        for rec in records:
            body = orjson.loads(rec.value)
            oid = body.get("data", {}).get("orderId")
            if oid in orders and (types is None or body.get("eventType") in types):
                found.append((oid, rec.timestamp))
        return found

    async with kafka_io.probe(bootstrap) as consumer:
        read = {
            role: await kafka_io.read_all(consumer, stack.topic(role))
            for role in ("orders", "inventory_requests", "inventory_events", "order_status")
        }
    return hop_spans(
        dict(by_order(read["orders"], None)),
        by_order(read["inventory_requests"], ("ReserveStock",)),
        by_order(read["inventory_events"], ANSWERS),
        dict(by_order(read["order_status"], None)),
    )


def hops_line(run: LatencyRun) -> str:
    """The run's hops as one line: p50 / p99 ms each."""
    return "hops, p50 / p99 ms: " + ", ".join(
        f"{hop} {p50:.1f} / {p99:.1f}" for hop, (p50, p99, _) in run.hops_ms.items()
    )


def restamped(payload: bytes, now: datetime) -> bytes:
    """The order's payload with its timestamp set to the moment it is sent (v1 or v2 shape)."""
    body = orjson.loads(payload)
    body["timestamp"] = now.isoformat()
    return orjson.dumps(body)


def spread(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return percentile(ordered, 50), percentile(ordered, 99), ordered[-1]


def measure(bootstrap: str, config: BenchConfig) -> LatencyRun:
    stack = RunStack(bootstrap, "latency", config.partitions, config.worker_env)
    stack.create_topics()
    total_s = config.latency_warmup_s + config.latency_s
    scenario = scenario_for(stack, int(config.latency_rate * total_s))
    worker = stack.start_worker()
    try:
        worker.wait_ready(WORKER_READY_TIMEOUT_S)
        assert worker.proc is not None
        run = asyncio.run(_offer(stack, scenario, config, lambda: worker.running))
        # An overloaded worker still has a backlog: the invariants are checked once it drained.
        asyncio.run(
            kafka_io.wait_for_records(
                bootstrap,
                stack.topic("order_status"),
                len(scenario.orders),
                timeout_s=60 + len(scenario.orders) / MIN_RATE,
                alive=lambda: worker.running,
                label=stack.name,
            )
        )
        peak = procstat.usage(worker.proc.pid).peak_rss_mb
        problems = asyncio.run(pipeline_problems(stack.settings, scenario))
        spans = asyncio.run(_hops(bootstrap, stack, set(measured_orders(scenario, config))))
    finally:
        stack.stop()
    hops = {hop: spread(ms) for hop, ms in spans.items() if ms}
    return replace(run, peak_rss_mb=peak, problems=problems, hops_ms=hops)


def measured_orders(scenario: Scenario, config: BenchConfig) -> list[str]:
    """The orders a run measures: those sent after the warm-up, in the order sent."""
    warm = int(config.latency_rate * config.latency_warmup_s)
    return [o.order_id for o in scenario.orders[warm:]]


async def _offer(
    stack: RunStack, scenario: Scenario, config: BenchConfig, alive: Callable[[], bool]
) -> LatencyRun:
    consumer = await _follow(stack.bootstrap, stack.topic("order_status"))
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    sent_at: dict[str, float] = {}
    try:
        for adj in restock_events(stack.name, scenario.restocks):
            role, key = route(adj)
            await producer.send(stack.topic(role), encode(adj), key=key.encode())
        await producer.flush()
        # Applied before the first order: Kafka orders records only within a partition
        await wait_restocked(stack.settings, stack.name, set(scenario.restocks))
        sender = asyncio.create_task(
            _paced(producer, stack, scenario, config.latency_rate, sent_at)
        )
        seen, gave_up_at = await _statuses(consumer, scenario, sent_at, sender, alive)
        achieved = await sender
    finally:
        await producer.stop()
        await consumer.stop()
    measured = measured_orders(scenario, config)
    unsettled = [oid for oid in measured if oid not in seen]
    for oid in unsettled:  # at least this late
        seen[oid] = ((gave_up_at - sent_at[oid]) * 1000.0,) * 2
    return LatencyRun(
        offered_per_s=config.latency_rate,
        achieved_per_s=achieved,
        measured=len(measured),
        unsettled=len(unsettled),
        event_ms=spread([seen[oid][0] for oid in measured]),
        record_ms=spread([seen[oid][1] for oid in measured]),
        peak_rss_mb=0.0,
        problems=[],
    )


async def _paced(
    producer: AIOKafkaProducer,
    stack: RunStack,
    scenario: Scenario,
    rate: float,
    sent_at: dict[str, float],
) -> float:
    """Send order i at start + i / rate; the achieved rate."""
    topic = stack.topic("orders")
    start = time.monotonic()
    for i, order in enumerate(scenario.orders):
        ahead = start + i / rate - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
        now = time.time()
        payload = restamped(order.payload, datetime.fromtimestamp(now, UTC))
        sent_at[order.order_id] = now
        await producer.send(topic, payload, key=order.order_id.encode())
    await producer.flush()
    return len(scenario.orders) / (time.monotonic() - start)


async def _follow(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A consumer positioned at the current end of the topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in sorted(await partitions_of(consumer, topic))]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    return consumer


async def _statuses(
    consumer: AIOKafkaConsumer,
    scenario: Scenario,
    sent_at: dict[str, float],
    sender: asyncio.Task[float],
    alive: Callable[[], bool],
) -> tuple[dict[str, tuple[float, float]], float]:
    """orderId -> (event latency ms, record latency ms) of every status that arrived before
    GRACE_S after the last send; and the epoch time it stopped waiting."""
    wanted = {o.order_id for o in scenario.orders}
    seen: dict[str, tuple[float, float]] = {}
    deadline = float("inf")
    while len(seen) < len(wanted) and time.time() < deadline:
        if not alive():
            raise BenchError(f"the worker exited with {len(seen)}/{len(wanted)} orders settled")
        if sender.done() and deadline == float("inf"):
            sender.result()  # a failed sender raises here
            deadline = time.time() + GRACE_S
        batch = await consumer.getmany(timeout_ms=100, max_records=5000)
        for records in batch.values():
            for rec in records:
                body = orjson.loads(rec.value)
                oid = body["data"]["orderId"]
                if oid in wanted and oid not in seen:
                    event_s = _epoch(body["timestamp"]) - _epoch(body["data"]["placedAt"])
                    record_s = rec.timestamp / 1000.0 - sent_at[oid]
                    seen[oid] = (event_s * 1000.0, record_s * 1000.0)
    return seen, time.time()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()

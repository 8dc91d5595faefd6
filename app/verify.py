"""Reads topics back to check a run: outcomes per order, charges, the latest stock per product."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.domain.inventory import ProductStock
from app.errors import BrokerError
from app.kafka_auth import client_options
from app.settings import Settings
from app.topics import changelog_topic, registry


async def partitions_of(consumer: AIOKafkaConsumer, name: str) -> set[int]:
    """Partition numbers of any topic (the consumer's own metadata covers only its assignment)."""
    for _ in range(50):  # a topic created a moment ago may not be in the metadata yet
        metadata = await consumer._client.fetch_all_metadata()
        found = set(metadata.partitions_for_topic(name) or ())
        if found:
            return found
        await asyncio.sleep(0.2)
    raise BrokerError(f"topic {name} not found: run `orderstream topics` to create it")


async def read_topic(settings: Settings, name: str, *, idle_s: float = 1.0) -> list[Any]:
    """Every record of a topic from the beginning up to its end offsets at call time."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **client_options(settings),
    )
    await consumer.start()
    try:
        parts = await partitions_of(consumer, name)
        if not parts:
            await consumer.stop()
            return []
        tps = [TopicPartition(name, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(
                *remaining, timeout_ms=int(idle_s * 1000), max_records=10_000
            )
            for tp, msgs in batch.items():
                records.extend(msgs)
                if msgs and msgs[-1].offset >= end[tp] - 1:
                    remaining.discard(tp)
            if not batch:
                remaining = {tp for tp in remaining if await consumer.position(tp) < end[tp]}
        return records
    finally:
        await consumer.stop()


@dataclass
class RunReport:
    """What the topics say about a set of orders."""

    outcomes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    charges: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    reasons: dict[str, str] = field(default_factory=dict)  # orderId -> last reason given
    stock: dict[str, ProductStock] = field(default_factory=dict)
    dead_letters: int = 0

    def status_of(self, order_id: str) -> str | None:
        found = self.outcomes.get(order_id)
        return next(iter(found)) if found and len(found) == 1 else None


async def collect(settings: Settings, order_ids: Iterable[str] | None = None) -> RunReport:
    topics = registry(settings)
    wanted = set(order_ids) if order_ids is not None else None
    status, payments, stock, dlq = await asyncio.gather(
        read_topic(settings, topics["order_status"].name),
        read_topic(settings, topics["payment_events"].name),
        read_topic(settings, changelog_topic(settings, "inventory")),
        read_topic(settings, topics["dead_letters"].name),
    )
    report = RunReport(dead_letters=len(dlq))
    for rec in status:
        data = orjson.loads(rec.value)["data"]
        if wanted is None or data["orderId"] in wanted:
            report.outcomes[data["orderId"]].add(data["status"])
            if data.get("reason"):
                report.reasons[data["orderId"]] = data["reason"]
    for rec in payments:
        body = orjson.loads(rec.value)
        data = body["data"]
        charged = body["eventType"] == "PaymentSucceeded"
        if charged and (wanted is None or data["orderId"] in wanted):
            report.charges[data["orderId"]].add(data["chargeId"])
    for rec in stock:  # compacted changelog: the last value per key wins
        if rec.value is not None:
            s = ProductStock.model_validate_json(rec.value)
            report.stock[s.productId] = s
    return report


def invariant_violations(report: RunReport, order_ids: Iterable[str]) -> list[str]:
    """Every broken invariant, in words (empty when all hold)."""
    problems: list[str] = []
    for s in report.stock.values():
        if not s.conserved():
            problems.append(
                f"stock not conserved for {s.productId}: restocked={s.restocked} "
                f"available={s.available} held={s.held} sold={s.sold}"
            )
    for oid in order_ids:
        found = report.outcomes.get(oid, set())
        if len(found) != 1:
            problems.append(f"order {oid} has terminal states {sorted(found) or 'none'}")
        if len(report.charges.get(oid, set())) > 1:
            problems.append(f"order {oid} charged {len(report.charges[oid])} times")
        if report.charges.get(oid) and found != {"CONFIRMED"}:
            problems.append(f"order {oid} charged but {sorted(found)}")
    return problems


async def consumer_lag(settings: Settings) -> dict[str, int]:
    """Records not yet committed by the application's consumer group, per input topic."""
    from aiokafka.admin import AIOKafkaAdminClient

    topics = registry(settings)
    inputs = [
        topics[r].name
        for r in (
            "orders",
            "inventory_requests",
            "stock_adjustments",
            "inventory_events",
            "payment_requests",
            "payment_events",
            "saga_timeouts",
        )
    ]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **client_options(settings)
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        **client_options(settings),
    )
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
        tps = [TopicPartition(t, p) for t in inputs for p in await partitions_of(consumer, t)]
        end = await consumer.end_offsets(tps)
        lag: dict[str, int] = {t: 0 for t in inputs}
        for tp in tps:
            done = committed.get(tp)
            lag[tp.topic] += end[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
        return lag
    finally:
        await consumer.stop()
        await admin.close()

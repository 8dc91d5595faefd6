"""Reading a whole topic with a plain consumer (no group, no commits): `orderstream dlq`,
`orderstream replay`, the verifier and the benchmark read topics back this way."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from orderstream.errors import BrokerError
from orderstream.kafka.auth import client_options
from orderstream.settings import Settings


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
        isolation_level="read_committed",  # what a downstream consumer sees
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

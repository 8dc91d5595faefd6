"""Standby replicas: with `table_standby_replicas=1` the surviving worker already holds a copy of
the dead worker's tables, so taking over its partitions needs (almost) no changelog replay."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from app.domain.inventory import ProductStock
from app.topics import changelog_topic
from tests.integration.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KEYS = 100_000
LOG_TIME = re.compile(rb"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\].*Worker ready", re.M)


async def _preload(s: Stack) -> None:
    """KEYS products straight into the inventory changelog, as a long-lived table would hold."""
    producer = AIOKafkaProducer(
        bootstrap_servers=s.settings.bootstrap_servers,
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks=1,
    )
    await producer.start()
    topic = changelog_topic(s.settings, "inventory")
    try:
        for i in range(KEYS):
            sku = f"SKU-{i:07d}"
            value = ProductStock(productId=sku, available=5, restocked=5).model_dump_json()
            await producer.send(topic, value.encode(), key=sku.encode())
        await producer.flush()
    finally:
        await producer.stop()


def _ready_times(log: Path, after: float) -> list[float]:
    stamps = [
        datetime.strptime(m.decode(), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for m in LOG_TIME.findall(log.read_bytes())
    ]
    return [t for t in stamps if t > after]


def _failover_s(stack: type[Stack], standby: int) -> float:
    """Seconds from kill -9 of one of two workers to the survivor serving every partition."""
    s = stack(table_standby_replicas=standby)
    asyncio.run(_preload(s))
    w1, w2 = s.worker("w1"), s.worker("w2")
    time.sleep(15)  # standbys catch up with the changelog (a no-op without them)
    killed = time.time()
    w1.kill()
    assert w2.log_path is not None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready = _ready_times(w2.log_path, killed)
        if ready:
            return ready[-1] - killed
        time.sleep(0.2)
    raise AssertionError("the survivor never took over")


def test_standby_replicas_make_failover_faster(stack: type[Stack]) -> None:
    without = _failover_s(stack, standby=0)
    with_standby = _failover_s(stack, standby=1)
    print(
        f"\nfailover after kill -9 with {KEYS} keys: no standby {without:.1f}s, "
        f"standby replica {with_standby:.1f}s (both include the 10 s session timeout)"
    )
    assert with_standby < without

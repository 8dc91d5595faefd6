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

from orderstream.contracts.topics import changelog_topic
from orderstream.domain.inventory import ProductStock
from orderstream.domain.state import encode_state
from tests.integration.conftest import Stack
from tests.integration.webclient import eventually, get

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
            value = encode_state(ProductStock(productId=sku, available=5, restocked=5))
            await producer.send(topic, value, key=sku.encode())
        await producer.flush()
    finally:
        await producer.stop()


def _ready_times(log: Path, after: float) -> list[float]:
    stamps = [
        datetime.strptime(m.decode(), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for m in LOG_TIME.findall(log.read_bytes())
    ]
    return [t for t in stamps if t > after]


def _table(lines: list[str], start: int) -> dict[tuple[str, int], int]:
    """Rows `| topic | partition | value |` of one of Faust's recovery tables."""
    rows: dict[tuple[str, int], int] = {}
    topic = ""
    for line in lines[start + 4 :]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[1].isdigit():
            break
        topic = topic if cells[0] == "\u3003" else cells[0]
        rows[(topic, int(cells[1]))] = int(cells[2])
    return rows


def _replayed(log: Path, after: float) -> int:
    """Changelog records the worker read to take over partitions in its last recovery after
    `after`: highwater minus where reading started, per partition (Faust logs both tables)."""
    lines = log.read_text().splitlines()
    stamps = [
        (i, datetime.strptime(ln[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp())
        for i, ln in enumerate(lines)
        if ln.startswith("[20")
    ]
    high = start = -1
    for i, t in stamps:
        if t > after and "Highwater for active" in lines[i]:
            high = i
        if t > after and "active offsets at start of reading" in lines[i]:
            start = i
    assert high >= 0 and start >= 0, "no recovery logged after the kill"
    tops, begins = _table(lines, high), _table(lines, start)
    return sum(h - max(begins.get(tp, -1), -1) for tp, h in tops.items() if h >= 0)


def _standby_caught_up(port: int) -> bool:
    status = get(port, "/readyz").json
    return bool(status["standby_partitions"] and status["standby_remaining"] == 0)


def _failover(stack: type[Stack], standby: int) -> tuple[float, int]:
    """Seconds from kill -9 of one of two workers to the survivor serving every partition,
    and the changelog records the survivor had to replay to get there."""
    s = stack(table_standby_replicas=standby)
    asyncio.run(_preload(s))
    # w1 first, alone: it restores every partition; w2 then takes half of them. Started
    # together, w2 could be first and keep a local copy of what w1 later owns, and then its
    # take-over replayed nothing with or without a standby.
    w1 = s.worker("w1")
    w2 = s.worker("w2")
    if standby:  # the survivor's replicas have read the changelogs up to their ends
        eventually(lambda: _standby_caught_up(w2.web_port), 240, "standby replicas caught up")
    else:
        eventually(lambda: get(w2, "/readyz").status == 200, 120, "w2 ready")
    killed = time.time()
    w1.kill()
    assert w2.log_path is not None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready = _ready_times(w2.log_path, killed)
        if ready:
            return ready[-1] - killed, _replayed(w2.log_path, killed)
        time.sleep(0.2)
    raise AssertionError("the survivor never took over")


def test_standby_replicas_make_failover_faster(own_stack: type[Stack]) -> None:
    stack = own_stack
    without_s, without_n = _failover(stack, standby=0)
    with_s, with_n = _failover(stack, standby=1)
    print(
        f"\nfailover after kill -9 with {KEYS} keys: no standby {without_s:.1f}s replaying "
        f"{without_n} records; standby replica {with_s:.1f}s replaying {with_n} records "
        "(both include the 10 s session timeout)"
    )
    # The survivor of a standby set-up replays (almost) nothing; without, half the table.
    assert without_n > KEYS // 4
    assert with_n < without_n // 10

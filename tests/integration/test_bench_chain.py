"""The benchmark's two framework-free yardsticks on the real broker: the raw aiokafka loop and the
same chain through Faust with no application code. Each must carry every order through every hop
and write exactly its share of side records, or the ratios the benchmark prints mean nothing.
And the throughput scenario with two workers: both work, and their CPU is summed."""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from bench import kafka_io, raw_loop, throughput
from bench.config import BenchConfig
from devtools.broker import LocalBroker
from tests.integration.conftest import create_topic

pytestmark = pytest.mark.integration  # the real broker and real worker processes

ORDERS = 300
SHAPE = raw_loop.ChainShape(hops=3, side_per_hop=1.5)
CLIENTS: tuple[raw_loop.Client, ...] = ("raw", "faust")


@pytest.mark.parametrize("client", CLIENTS)
def test_chain_moves_every_order_through_every_hop(
    kafka: LocalBroker, client: raw_loop.Client
) -> None:
    run = raw_loop.measure(kafka.bootstrap, BenchConfig(partitions=2), ORDERS, SHAPE, client)

    read = ORDERS * SHAPE.hops
    forwarded = ORDERS * SHAPE.hops  # hop i -> hop i+1, the last hop included
    side = math.floor(ORDERS * SHAPE.hops * SHAPE.side_per_hop)
    assert run.records == read + forwarded + side
    assert run.orders == ORDERS
    assert run.orders_per_s > 0 and run.elapsed_s > 0
    assert run.cpu_s > 0 and run.peak_rss_mb > 0


@pytest.mark.timeout(900)
def test_two_workers_settle_every_order_and_their_cpu_adds_up(own_kafka: LocalBroker) -> None:
    # own_kafka: the assertions need a clean two-worker rebalance (see the fixture)
    run = throughput.measure(own_kafka.bootstrap, BenchConfig(partitions=4), ORDERS, workers=2)

    assert run.problems == []
    assert run.orders == ORDERS and run.workers == 2
    assert all(cpu > 0 for cpu in run.worker_cpu_s)  # both took partitions and settled orders
    assert run.cpu_s == pytest.approx(sum(run.worker_cpu_s))
    assert run.cpu_ms_per_order == pytest.approx(run.cpu_s * 1000 / ORDERS)
    assert run.records_per_order == pytest.approx(run.consumed_per_order + run.produced_per_order)
    assert run.orders_per_s > 0 and run.peak_rss_mb > 0


async def _transactional(bootstrap: str, topic: str, n: int) -> None:
    await create_topic(bootstrap, topic, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-tx")
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(n):
                await producer.send(topic, f"v{i}".encode(), key=b"k")
    finally:
        await producer.stop()


async def _read_back(bootstrap: str, topic: str) -> list[Any]:
    async with kafka_io.probe(bootstrap) as consumer:
        return await asyncio.wait_for(kafka_io.read_all(consumer, topic), timeout=30)


def test_a_topic_written_in_transactions_is_read_to_its_end(kafka: LocalBroker) -> None:
    # Given a topic a transactional producer wrote (exactly-once workers do): after the records,
    # the transaction's commit marker takes an offset no consumer ever receives
    topic = f"bench-tx-{uuid.uuid4().hex[:8]}"
    asyncio.run(_transactional(kafka.bootstrap, topic, 3))
    # When the benchmark reads it back, Then it gets every record and stops at the end
    records = asyncio.run(_read_back(kafka.bootstrap, topic))
    assert [r.value for r in records] == [b"v0", b"v1", b"v2"]

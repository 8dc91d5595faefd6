"""The real local broker: start, produce/consume, restart with data kept, crash and recover."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devtools.broker import LocalBroker, find_java
from orderstream.settings import Settings
from tests.integration.conftest import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TOPIC = "broker-selftest"
DEV_BROKER_PORTS = {19092, 19093}  # the developer's own broker: never touch it


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    find_java()  # fails with a clear BrokerError: these tests need Java 17+ and Maven
    assert shutil.which("mvn"), "Maven not found: install Maven 3.8+ (apt-get install maven)"
    port, controller_port = free_ports(2)
    assert not {port, controller_port} & DEV_BROKER_PORTS
    settings = Settings(
        local_broker_dir=tmp_path / "kafka",
        local_broker_host="127.0.0.1",
        local_broker_port=port,
        local_controller_port=controller_port,
        local_broker_heap="512m",
        local_broker_start_timeout_s=60.0,
        partitions=2,
    )
    local = LocalBroker(settings)
    try:
        yield local
    finally:
        local.stop(timeout=15)


async def create_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name=TOPIC, num_partitions=2, replication_factor=1)]
        )
        errors = [err for _name, err, *_ in response.topic_errors if err != 0]
        assert not errors, response
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()


async def produce(bootstrap: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, value, key=b"order-1")
    finally:
        await producer.stop()


async def consume(bootstrap: str, group: str, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while len(values) < expected and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            values += [msg.value for msgs in batches.values() for msg in msgs if msg.value]
    finally:
        await consumer.stop()
    return values


def test_broker_keeps_data_across_restarts(broker: LocalBroker) -> None:
    started = time.monotonic()
    status = broker.start()
    first_start_s = time.monotonic() - started
    assert status.running
    assert status.pid is not None
    assert status.bootstrap == broker.bootstrap
    assert (broker.data_dir / "meta.properties").is_file()
    assert broker.log_file.is_file()

    asyncio.run(create_topic(broker.bootstrap))
    asyncio.run(produce(broker.bootstrap, b"hello"))
    assert asyncio.run(consume(broker.bootstrap, "g1", 1)) == [b"hello"]

    # starting again while running is a no-op
    assert broker.start().pid == status.pid

    assert broker.stop() is True
    assert not broker.status().running
    assert broker.stop() is False  # idempotent

    started = time.monotonic()
    restarted = broker.start()
    warm_start_s = time.monotonic() - started
    assert restarted.running
    assert restarted.pid != status.pid
    assert TOPIC in asyncio.run(list_topics(broker.bootstrap))
    assert asyncio.run(consume(broker.bootstrap, "g2", 1)) == [b"hello"]

    # a crash (SIGKILL) loses nothing that was acknowledged with acks=all
    asyncio.run(produce(broker.bootstrap, b"second"))
    assert broker.kill() is True
    assert not broker.status().running
    assert broker.start().running
    assert sorted(asyncio.run(consume(broker.bootstrap, "g3", 2))) == [b"hello", b"second"]

    assert broker.stop() is True
    print(f"first start {first_start_s:.1f}s, warm start {warm_start_s:.1f}s")

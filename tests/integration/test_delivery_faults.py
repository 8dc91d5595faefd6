"""Infrastructure failures are not bad input: a record the broker refuses is never committed
over (the worker stops loudly and, restarted, processes it again), and a failing store is
retried and then stops its partition; neither becomes a dead letter, and processing resumes
once the cause is gone.

Real broker, real `faust worker` processes: the broker refuses the worker's writes because a
topic's max.message.bytes is set below any record batch (as a misconfigured or full topic
would), and the store fails through ORDERSTREAM_CHAOS_STORE_FAILURES."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devtools.workers import WorkerProcess
from orderstream.contracts.events import (
    OrderItem,
    OrderPlaced,
    OrderPlacedData,
    encode,
    event_id,
    utcnow,
)
from orderstream.contracts.topics import registry
from orderstream.kafka.auth import client_options
from orderstream.kafka.reader import read_topic
from tests.integration.conftest import Stack
from tests.integration.webclient import (
    TERMINAL,
    TOKEN,
    eventually,
    get,
    place,
    restock,
    settled,
    stock_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

SKUS = ("SKU-A", "SKU-B")


async def _set_configs(stack: Stack, roles: tuple[str, ...], extra: dict[str, str]) -> None:
    """Set the topics' configs to the registry's plus `extra` (alter_configs replaces all)."""
    specs = registry(stack.settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=stack.settings.bootstrap_servers, **client_options(stack.settings)
    )
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, specs[r].name, {**specs[r].configs, **extra}
                )
                for r in roles
            ]
        )
    finally:
        await admin.close()


async def _committed(stack: Stack) -> dict[tuple[str, int], int]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=stack.settings.bootstrap_servers, **client_options(stack.settings)
    )
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(stack.settings.app_id)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


def _terminal_records(stack: Stack) -> Counter[str]:
    """Terminal records per order on the order-status topic, counted (a duplicate shows)."""
    return Counter(order for order, _ in _terminal_events(stack))


def _terminal_events(stack: Stack) -> list[tuple[str, tuple[str, str]]]:
    name = registry(stack.settings)["order_status"].name
    records = asyncio.run(read_topic(stack.settings, name))
    events = [orjson.loads(r.value) for r in records]
    return [(e["data"]["orderId"], (e["eventId"], e["eventType"])) for e in events]


def _one_outcome_each(stack: Stack, orders: list[str]) -> None:
    """Every order has exactly one outcome: its terminal records (re-sent after a rewind, at
    least once) all carry one event id and one status."""
    # The web view reads the worker's store, which a restarted worker may have ahead of the
    # topic (written before the refused send); the records it sends again land a little later.
    eventually(
        lambda: set(orders) <= set(_terminal_records(stack)), 120, "a terminal record per order"
    )
    outcomes: dict[str, Counter[tuple[str, str]]] = {o: Counter() for o in orders}
    for order, outcome in _terminal_events(stack):
        if order in outcomes:
            outcomes[order][outcome] += 1
    assert {o: len(c) for o, c in outcomes.items()} == {o: 1 for o in orders}, outcomes


def _dead_letters(stack: Stack) -> int:
    return len(
        asyncio.run(read_topic(stack.settings, registry(stack.settings)["dead_letters"].name))
    )


def _metric(w: WorkerProcess, name: str, labels: str = "") -> float:
    text = get(w, "/metrics").text
    pattern = rf"^{re.escape(name)}(\{{[^}}]*{re.escape(labels)}[^}}]*\}})? ([0-9.e+]+)$"
    return sum(float(m.group(2)) for m in re.finditer(pattern, text, re.M))


def _ready_again(w: WorkerProcess) -> None:
    try:
        eventually(lambda: get(w, "/readyz").status == 200, 60, "/readyz to be ready again")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {get(w, '/readyz').text}") from None


def _place_orders(w: WorkerProcess, prefix: str, n: int) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(n)]
    for i, order_id in enumerate(ids):
        place(w, order_id, [(SKUS[i % 2], 1)], 1.0)
    return ids


async def _produce_orders(stack: Stack, prefix: str, n: int) -> list[str]:
    """Orders straight to the order topic, as an order service would (the worker's POST /orders
    is not there once the worker stopped)."""
    ids = [f"{prefix}-{i}" for i in range(n)]
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.settings.bootstrap_servers, **client_options(stack.settings)
    )
    await producer.start()
    try:
        topic = registry(stack.settings)["orders"].name
        for i, order_id in enumerate(ids):
            item = OrderItem(productId=SKUS[i % 2], quantity=1, price=1.0)
            data = OrderPlacedData(
                orderId=order_id, customerId="C-faults", items=[item], totalAmount=1.0
            )
            event = OrderPlaced(
                eventId=event_id("OrderPlaced", order_id), timestamp=utcnow(), data=data
            )
            await producer.send_and_wait(topic, encode(event), key=order_id.encode())
    finally:
        await producer.stop()
    return ids


def test_a_write_the_broker_refuses_is_never_committed_over(stack: Any) -> None:
    s: Stack = stack(admin_token=TOKEN)
    w = s.worker()
    for sku in SKUS:
        restock(w, sku, 1000)
    before = _place_orders(w, "ok", 10)
    for order_id in before:
        settled(w, order_id)
    # Given the broker refuses every record of the order-status topic and the orders table's
    # changelog (max.message.bytes below any record batch)
    refused = ("order_status", "changelog_orders")
    asyncio.run(_set_configs(s, refused, {"max.message.bytes": "64"}))
    committed_before = asyncio.run(_committed(s))
    # When orders come in (the order topic takes them; the worker stops at the first refusal)
    during = asyncio.run(_produce_orders(s, "refused", 12))
    # Then the worker stops loudly (as a Kafka Streams thread on a production error), with
    # nothing settled and no committed offset of the order topic past the new orders
    eventually(lambda: not w.running, 60, "the worker to stop on the failed deliveries")
    assert w.log_path is not None
    log = w.log_path.read_text(errors="replace")
    assert "did not reach the broker" in log and "nothing is committed over them" in log
    assert not set(during) & set(_terminal_records(s))
    orders_topic = registry(s.settings)["orders"].name
    committed_during = asyncio.run(_committed(s))
    for (topic, partition), offset in committed_during.items():
        if topic == orders_topic:
            assert offset == committed_before.get((topic, partition), offset), (
                f"{topic}/{partition} committed from "
                f"{committed_before.get((topic, partition))} to {offset} over refused writes"
            )
    # When the cause is fixed and the worker is started again (as its supervisor would)
    asyncio.run(_set_configs(s, refused, {}))
    w.start()
    w.wait_ready()
    # Then every order settles exactly once, with no dead letter
    for order_id in during:
        settled(w, order_id, timeout_s=120)
    _one_outcome_each(s, before + during)
    assert _dead_letters(s) == 0
    # And the changelog holds what the worker applied while the broker refused it: a worker
    # rebuilt from the changelogs alone (wiped data dir) sees every order settled
    w.kill()
    fresh = s.worker("w2")
    for order_id in before + during:
        body = settled(fresh, order_id, timeout_s=60)
        assert body["status"] in TERMINAL


def test_a_failing_store_is_retried_then_stops_its_partition_never_a_dead_letter(
    stack: Any,
) -> None:
    # Given a worker whose first 12 table writes fail (a broken disk), 3 attempts per record and
    # a 2 s stop before its partition is read again: the restocks hit them
    s: Stack = stack(
        admin_token=TOKEN,
        chaos_store_failures=12,
        handler_max_attempts=3,
        handler_retry_backoff_s=0.05,
        partition_fault_retry_s=2,
    )
    w = s.worker()
    for sku in SKUS:
        restock(w, sku, 1000)
    for sku in SKUS:  # applied once the store works again: the stock is there for the orders
        eventually(lambda sku=sku: (stock_of(w, sku) or {}).get("available") == 1000, 60, sku)
    # When orders come in
    orders = _place_orders(w, "disk", 20)
    # Then every order settles exactly once once the store works again, with no dead letter
    for order_id in orders:
        settled(w, order_id, timeout_s=120)
    _one_outcome_each(s, orders)
    assert _dead_letters(s) == 0
    stock = [get(w, f"/inventory/{sku}").json for sku in SKUS]
    assert sum(st["sold"] for st in stock) + sum(st["held"] for st in stock) == 20
    # And the failures were retried in place, then stopped their partition (rewound later)
    assert _metric(w, "orderstream_handler_retries_total") >= 12
    assert _metric(w, "orderstream_partition_rewinds_total", 'cause="fault"') >= 1
    _ready_again(w)


def test_a_worker_killed_in_the_middle_of_a_table_flush_loses_nothing(
    stack: Any, tmp_path: Any
) -> None:
    # Given a worker with write-back tables (exactly-once mode) that dies (no cleanup, as
    # kill -9) after the first partition's store batch of a table flush: some partitions'
    # values are in RocksDB, the others only in the changelog
    marker = tmp_path / "died-in-flush"
    s: Stack = stack(
        admin_token=TOKEN, chaos_crash_in_flush=marker, processing_guarantee="exactly_once"
    )
    w = s.worker()
    for sku in SKUS:
        restock(w, sku, 30)
    # When orders come in, more than the stock (some are rejected)
    orders = [f"flush-{i}" for i in range(80)]
    placed = 0
    for i, order_id in enumerate(orders):
        try:
            place(w, order_id, [(SKUS[i % 2], 1)], 1.0)
        except Exception:  # the worker died under the request: placed again below
            break
        placed += 1
    eventually(lambda: not w.running, 60, "the worker to die in a flush")
    assert marker.exists()
    # And it is restarted on the same data directory, and the orders it did not take are
    # placed again (the same body is the same event: a duplicate if it had reached Kafka)
    w.start()
    w.wait_ready()
    for i in range(placed, len(orders)):
        place(w, orders[i], [(SKUS[i % 2], 1)], 1.0)
    # Then every order settles with exactly one outcome, no dead letter, stock conserved
    statuses = [settled(w, order_id, timeout_s=120)["status"] for order_id in orders]
    _one_outcome_each(s, orders)
    assert _dead_letters(s) == 0
    # (the confirmed orders' commits go out with the next offset commit)
    eventually(
        lambda: sum(get(w, f"/inventory/{sku}").json["held"] for sku in SKUS) == 0, 60, "holds"
    )
    stock = [get(w, f"/inventory/{sku}").json for sku in SKUS]
    assert sum(st["held"] for st in stock) == 0
    assert sum(st["sold"] for st in stock) == statuses.count("CONFIRMED") <= 60
    assert all(st["available"] + st["sold"] == 30 for st in stock), stock
    # And a worker rebuilt from the changelogs alone (wiped data dir) agrees
    w.kill()
    fresh = s.worker("w2")
    rebuilt = [get(fresh, f"/inventory/{sku}").json for sku in SKUS]
    assert [{**st, "servedBy": ""} for st in rebuilt] == [{**st, "servedBy": ""} for st in stock]

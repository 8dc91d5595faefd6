"""Producers we did not write (issue 15): librdkafka's transactions and its default partitioner,
round-robin placement, records without a key, an order topic whose retention passed the group's
committed offsets, and a stock adjustment on another partition than its product's. One worker
each, a few dozen orders, bounded waits."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import orjson
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from devtools import demo
from devtools.simulator import Scenario, SimOrder, build_scenario, restock_events
from devtools.verify import RunReport, collect, invariant_violations
from devtools.workers import WorkerProcess
from orderstream.contracts.events import (
    OrderItem,
    OrderPlaced,
    OrderPlacedData,
    StockAdjusted,
    StockAdjustmentData,
    encode,
    utcnow,
)
from orderstream.contracts.topics import changelog_topic, registry
from orderstream.domain.inventory import ProductStock
from orderstream.domain.state import decode_state
from orderstream.kafka.partitioner import partition_for
from orderstream.kafka.reader import read_topic
from orderstream.settings import Settings
from tests.integration.conftest import Stack
from tests.integration.webclient import eventually, get

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SETTLE_S = 60.0  # a few dozen orders settle in seconds; this bounds a stuck run
# A record of (key, value, partition); partition -1 lets the producer's partitioner choose.
Record = tuple[bytes | None, bytes, int]


# --- producing with librdkafka ---------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    key: bytes | None
    partition: int
    offset: int


def _producer(settings: Settings, **conf: object) -> Producer:
    """A confluent-kafka producer; librdkafka's own defaults unless `conf` says otherwise."""
    return Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "acks": "all", "linger.ms": 5, **conf}
    )


def _produce(producer: Producer, topic: str, records: Iterable[Record]) -> list[Placed]:
    """Send and wait until the broker has every record (inside a transaction too)."""
    placed: list[Placed] = []
    errors: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            placed.append(Placed(msg.key(), msg.partition(), msg.offset()))  # type: ignore[attr-defined]

    for key, value, partition in records:
        producer.produce(topic, value, key, partition=partition, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0, "records still queued after 30 s"
    assert not errors, errors
    return placed


def _send(
    settings: Settings, topic: str, records: Iterable[Record], **conf: object
) -> list[Placed]:
    """Send with a producer of its own, closed after."""
    producer = _producer(settings, **conf)
    try:
        return _produce(producer, topic, records)
    finally:
        producer.close()


def _keyed(
    orders: Sequence[SimOrder], partition: Callable[[int], int] = lambda n: -1
) -> list[Record]:
    return [(o.order_id.encode(), o.payload, partition(n)) for n, o in enumerate(orders)]


def _murmur2_partition(settings: Settings, key: str) -> int:
    return partition_for(key.encode(), list(range(settings.partitions)), [])


def _misplaced(settings: Settings, placed: Iterable[Placed]) -> int:
    """How many keyed records sit on another partition than Kafka's default partitioner's."""
    return sum(
        1
        for p in placed
        if p.key is not None and p.partition != _murmur2_partition(settings, p.key.decode())
    )


# --- the scenario and its outcome ------------------------------------------------------------


def _scenario(s: Stack, n_orders: int) -> tuple[str, Scenario]:
    run_id = f"f{time.time_ns() // 1_000_000 % 10**10}"
    scenario = build_scenario(
        run_id, n_orders, products=6, payment_limit=s.settings.payment_limit_per_order
    )
    return run_id, scenario


def _restock(s: Stack, run_id: str, scenario: Scenario) -> None:
    """Stock for every order, on the products' own partitions, applied before any order."""
    topic = registry(s.settings)["stock_adjustments"].name
    records = [
        (adj.data.productId.encode(), encode(adj), -1)
        for adj in restock_events(run_id, scenario.restocks)
    ]
    _send(s.settings, topic, records, partitioner="murmur2_random")
    asyncio.run(demo.wait_restocked(s.settings, run_id, set(scenario.restocks), SETTLE_S))


def _wait_settled(s: Stack, order_ids: Iterable[str]) -> RunReport:
    """The topics' report once every order has an outcome, or when SETTLE_S is up."""
    wanted = set(order_ids)
    deadline = time.monotonic() + SETTLE_S
    while True:
        report = asyncio.run(collect(s.settings, wanted))
        if wanted <= set(report.outcomes) or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


def _status(w: WorkerProcess, order_id: str) -> str:
    answer = get(w, f"/orders/{order_id}")
    return str(answer.json["status"]) if answer.status == 200 else str(answer.status)


def _assert_settled(w: WorkerProcess, report: RunReport, orders: Sequence[SimOrder]) -> None:
    """Every order reached the terminal status the scenario expects, exactly once."""
    missing = [o.order_id for o in orders if o.order_id not in report.outcomes]
    assert not missing, (
        f"{len(missing)} of {len(orders)} orders not settled after {SETTLE_S:.0f}s; "
        f"e.g. {[(oid, _status(w, oid)) for oid in missing[:4]]}"
    )
    assert invariant_violations(report, [o.order_id for o in orders]) == []
    wrong = [
        (o.order_id, o.expected, report.status_of(o.order_id))
        for o in orders
        if report.status_of(o.order_id) != o.expected
    ]
    assert not wrong, f"orders in another state than expected: {wrong[:5]}"


def _assert_never_seen(w: WorkerProcess, report: RunReport, orders: Sequence[SimOrder]) -> None:
    seen = [o.order_id for o in orders if o.order_id in report.outcomes]
    assert not seen, f"{len(seen)} orders that must never be processed have an outcome: {seen[:4]}"
    known = [(o.order_id, _status(w, o.order_id)) for o in orders]
    assert all(status == "404" for _, status in known), known


def _repartitioned(w: WorkerProcess, topic: str) -> float:
    """orderstream_records_repartitioned_total for the topic (named with or without prefix)."""
    series = re.compile(
        r'^orderstream_records_repartitioned_total\{[^}]*topic="([^"]*)"[^}]*\} (\S+)$', re.M
    )
    metrics = get(w, "/metrics").text
    return sum(float(v) for name, v in series.findall(metrics) if name.endswith(topic))


# --- the tests -------------------------------------------------------------------------------


def test_transactions_committed_orders_settle_and_aborted_ones_never_appear(
    stack: Callable[..., Stack],
) -> None:
    # Given a worker and stock for every order
    s = stack()
    w = s.worker()
    run_id, scenario = _scenario(s, 40)
    _restock(s, run_id, scenario)
    first, second, aborted, plain = (scenario.orders[i : i + 10] for i in range(0, 40, 10))
    topic = registry(s.settings)["orders"].name
    # When a transactional librdkafka producer (Java's partitioner, so only the transactions
    # differ from our own producers) commits two transactions and aborts a third, whose
    # records reach the log before the abort; then plain orders follow on the same partitions
    txn = _producer(s.settings, partitioner="murmur2_random", **{"transactional.id": run_id})
    placed: list[Placed] = []
    try:
        txn.init_transactions(30)
        for batch, commit in ((first, True), (second, True), (aborted, False)):
            txn.begin_transaction()
            placed += _produce(txn, topic, _keyed(batch))
            if commit:
                txn.commit_transaction(30)
            else:
                txn.abort_transaction(30)
    finally:
        txn.close()
    placed += _send(s.settings, topic, _keyed(plain), partitioner="murmur2_random")
    assert _misplaced(s.settings, placed) == 0
    assert len({p.partition for p in placed}) == s.settings.partitions

    # Then every committed and plain order settles as expected; the aborted ones never appear
    report = _wait_settled(s, [o.order_id for o in [*first, *second, *plain]])
    report = asyncio.run(collect(s.settings, {o.order_id for o in scenario.orders}))
    _assert_settled(w, report, [*first, *second, *plain])
    _assert_never_seen(w, report, aborted)
    assert report.dead_letters == 0


PLACEMENTS: dict[str, Callable[[Settings, Sequence[SimOrder]], list[Record]]] = {
    # librdkafka's default partitioner (consistent_random: CRC32 of the key, not murmur2)
    "librdkafka-default": lambda settings, orders: _keyed(orders),
    # a producer that spreads records itself, whatever their key
    "round-robin": lambda settings, orders: _keyed(orders, lambda n: n % settings.partitions),
    # no key at all: only the payload names the order
    "no-key": lambda settings, orders: [(None, o.payload, -1) for o in orders],
}


@pytest.mark.parametrize("placement", list(PLACEMENTS))
def test_orders_on_any_partition_settle(stack: Callable[..., Stack], placement: str) -> None:
    # Given a worker and stock for every order
    s = stack()
    w = s.worker()
    run_id, scenario = _scenario(s, 40)
    _restock(s, run_id, scenario)
    # When a librdkafka producer places the orders its own way
    records = PLACEMENTS[placement](s.settings, scenario.orders)
    topic = registry(s.settings)["orders"].name
    placed = _send(s.settings, topic, records)
    if placement != "no-key":
        assert _misplaced(s.settings, placed) > 0, "the placement must differ from murmur2's"

    # Then every order settles as expected, nothing is a dead letter, and the records on
    # another partition than their order's were re-published (counted)
    report = _wait_settled(s, [o.order_id for o in scenario.orders])
    _assert_settled(w, report, scenario.orders)
    assert report.dead_letters == 0
    assert _repartitioned(w, "order-events") > 0


def _ends(placed: Iterable[Placed]) -> dict[int, int]:
    """The offset after the last of these records, per partition."""
    ends: dict[int, int] = {}
    for p in placed:
        ends[p.partition] = max(ends.get(p.partition, 0), p.offset + 1)
    return ends


def _committed(settings: Settings, topic: str) -> dict[int, int]:
    """The application's committed offsets on the topic, per partition."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    request = [ConsumerGroupTopicPartitions(settings.app_id)]
    (answer,) = admin.list_consumer_group_offsets(request).values()
    return {
        tp.partition: tp.offset
        for tp in answer.result(30).topic_partitions
        if tp.topic == topic and tp.offset >= 0
    }


def _delete_before(settings: Settings, topic: str, offsets: dict[int, int]) -> dict[int, int]:
    """Delete each partition's records before the offset, as retention does; the new starts."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    deleted = admin.delete_records([TopicPartition(topic, p, o) for p, o in offsets.items()])
    return {tp.partition: f.result(30).low_watermark for tp, f in deleted.items()}


@pytest.mark.timeout(480)  # three bounded waits and a worker restart
def test_orders_after_retention_passed_the_committed_offsets_settle(
    stack: Callable[..., Stack],
) -> None:
    # Given a worker that settled a first batch of orders, committed it and stopped
    s = stack()
    w = s.worker()
    run_id, scenario = _scenario(s, 50)
    _restock(s, run_id, scenario)
    done, expired, kept = scenario.orders[:15], scenario.orders[15:30], scenario.orders[30:]
    topic = registry(s.settings)["orders"].name
    committed = _ends(_send(s.settings, topic, _keyed(done), partitioner="murmur2_random"))
    _assert_settled(w, _wait_settled(s, [o.order_id for o in done]), done)
    deadline = time.monotonic() + SETTLE_S
    while any(_committed(s.settings, topic).get(p, -1) < end for p, end in committed.items()):
        assert time.monotonic() < deadline, (_committed(s.settings, topic), committed)
        time.sleep(0.5)
    w.stop()
    # When orders arrive while it is down and retention deletes them before it is back: the
    # topic now starts past the offsets the group committed
    ends = _ends(_send(s.settings, topic, _keyed(expired), partitioner="murmur2_random"))
    starts = _delete_before(s.settings, topic, ends)
    assert starts == ends and all(starts[p] > committed.get(p, 0) for p in starts)
    _send(s.settings, topic, _keyed(kept), partitioner="murmur2_random")
    w.start()
    w.wait_ready()

    # Then the orders after the deleted ones settle as expected; the deleted ones never appear
    _wait_settled(s, [o.order_id for o in kept])  # the expired ones never come
    report = asyncio.run(collect(s.settings, {o.order_id for o in [*expired, *kept]}))
    _assert_settled(w, report, kept)
    _assert_never_seen(w, report, expired)
    assert report.dead_letters == 0


def _adjustment(product: str, adjustment_id: str, delta: int) -> bytes:
    data = StockAdjustmentData(adjustmentId=adjustment_id, productId=product, delta=delta)
    return encode(StockAdjusted(eventId=f"adj-{adjustment_id}", timestamp=utcnow(), data=data))


def _order(order_id: str, product: str, quantity: int) -> SimOrder:
    item = OrderItem(productId=product, quantity=quantity, price=1.0)
    data = OrderPlacedData(
        orderId=order_id, customerId="C-split", items=[item], totalAmount=float(quantity)
    )
    event = OrderPlaced(eventId=f"evt-{order_id}", timestamp=utcnow(), data=data)
    return SimOrder(order_id, encode(event), "CONFIRMED", ((product, quantity),))


def _stock_records(s: Stack, product: str) -> dict[int, ProductStock]:
    """The latest value of the product's stock in each partition of the inventory changelog."""
    latest: dict[int, ProductStock] = {}
    for rec in asyncio.run(read_topic(s.settings, changelog_topic(s.settings, "inventory"))):
        if rec.key == product.encode() and rec.value is not None:
            latest[rec.partition] = decode_state(rec.value, ProductStock)
    return latest


def test_stock_adjustment_on_another_partition_keeps_one_stock_per_product(
    stack: Callable[..., Stack],
) -> None:
    # Given a worker and a product restocked with 5 on its own partition
    s = stack()
    w = s.worker()
    product, run_id = "SKU-SPLIT", f"f{time.time_ns() // 1_000_000 % 10**10}"
    home = _murmur2_partition(s.settings, product)
    other = (home + 1) % s.settings.partitions
    adjustments = registry(s.settings)["stock_adjustments"].name
    key = product.encode()
    _send(s.settings, adjustments, [(key, _adjustment(product, f"{run_id}-home", 5), home)])
    # When a producer puts a restock of 10 for it on another partition
    _send(s.settings, adjustments, [(key, _adjustment(product, f"{run_id}-other", 10), other)])

    def applied() -> bool:
        seen = {a for st in _stock_records(s, product).values() for a in st.recentAdjustments}
        return {f"{run_id}-home", f"{run_id}-other"} <= seen

    deadline = time.monotonic() + SETTLE_S
    while not applied():
        assert time.monotonic() < deadline, "the two restocks were not applied"
        time.sleep(0.5)
    # and orders take 12 of the 15 (more than either restock alone)
    orders = [_order(f"{run_id}-{n}", product, 4) for n in range(3)]
    topic = registry(s.settings)["orders"].name
    _send(s.settings, topic, _keyed(orders), partitioner="murmur2_random")
    report = _wait_settled(s, [o.order_id for o in orders])

    # Then the product has one stock, in one place, with both restocks in it
    rows = [r for r in get(w, "/inventory?limit=500").json["products"] if r["productId"] == product]
    assert len(rows) == 1 and rows[0]["restocked"] == 15, rows
    records = _stock_records(s, product)
    assert set(records) == {home}, {p: st.restocked for p, st in records.items()}
    # and the orders reserved from it
    _assert_settled(w, report, orders)
    # (the confirmed orders' commits go out with the next offset commit)
    eventually(lambda: orjson.loads(get(w, f"/inventory/{product}").text)["sold"] == 12, 60)
    stock = orjson.loads(get(w, f"/inventory/{product}").text)
    assert (stock["available"], stock["sold"]) == (3, 12), stock
    assert report.dead_letters == 0
    assert _repartitioned(w, "stock-adjustments") > 0

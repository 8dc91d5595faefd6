"""The web views on real workers: the order service, read models, long-polling, inventory,
the admin token, JSON errors, readiness, and routing by key with two workers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from devtools.workers import WorkerProcess
from orderstream.contracts.topics import changelog_topic
from orderstream.domain.projections import CustomerOrders, OrderRef, OrderSummary, Origin
from orderstream.domain.state import encode_state
from orderstream.kafka.partitioner import key_hash
from tests.integration.conftest import Stack, free_ports
from tests.integration.webclient import (
    AUTH,
    TOKEN,
    call,
    eventually,
    get,
    place,
    restock,
    settled,
    stock_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_order_service_read_models_and_errors(stack: type[Stack]) -> None:
    # Given one worker with two products restocked over HTTP
    w = stack(admin_token=TOKEN).worker()
    restock(w, "SKU-A", 10)
    restock(w, "SKU-B", 5)
    eventually(lambda: (stock_of(w, "SKU-B") or {}).get("available") == 5, what="restock")

    # When an order is posted, the very next GET (long-polling) sees it: read-your-writes
    place(w, "web-1", [("SKU-A", 2)], 20.0)
    first = get(w, "/orders/web-1?wait=10")
    assert first.status == 200, first.text
    assert first.json["orderId"] == "web-1"

    # Then it settles CONFIRMED, with payment, sold holds and timestamps in the read model
    order = settled(w, "web-1")
    assert order["status"] == "CONFIRMED"
    assert order["payment"]["status"] == "SUCCEEDED" and order["payment"]["chargeId"]
    assert order["holds"] == [{"productId": "SKU-A", "quantity": 2, "state": "sold"}]
    assert order["items"][0]["reservation"] == "RESERVED"
    assert order["placedAt"] <= order["updatedAt"]
    events = get(w, "/orders/web-1/events").json["events"]
    assert [e["eventType"] for e in events] == [
        "OrderPlaced",
        "StockReserved",
        "PaymentSucceeded",
        "OrderConfirmed",
    ]
    # ... and a settled order answers a long poll at once
    started = time.monotonic()
    assert get(w, "/orders/web-1?wait=20").json["status"] == "CONFIRMED"
    assert time.monotonic() - started < 5

    # When orders come in the flat v1 shape, for an unknown product, or above the payment limit
    v1 = {
        "orderId": "web-2",
        "items": [{"productId": "GHOST-1", "quantity": 1}],
        "totalAmount": 3.0,
        "timestamp": "2024-08-15T10:30:00Z",
    }
    assert call(w, "POST", "/orders", v1).status == 202
    place(w, "web-3", [("SKU-B", 1)], 5000.0)
    # Then each ends as the rules say, and stock adds up
    rejected, cancelled = settled(w, "web-2"), settled(w, "web-3")
    assert (rejected["status"], rejected["reason"]) == ("REJECTED", "unknown_product: GHOST-1")
    assert rejected["holds"] == []
    assert cancelled["status"] == "CANCELLED" and cancelled["payment"]["status"] == "FAILED"
    assert cancelled["holds"] == [{"productId": "SKU-B", "quantity": 1, "state": "released"}]
    assert eventually(lambda: stock_of(w, "SKU-B")["held"] == 0, what="release")  # type: ignore[index]
    # (a confirmed order's commit goes out with the next offset commit, batched: within a
    # commit interval)
    assert eventually(lambda: stock_of(w, "SKU-A")["sold"] == 2, what="sale")  # type: ignore[index]
    sku_a = stock_of(w, "SKU-A")
    assert sku_a is not None
    assert (sku_a["available"], sku_a["held"], sku_a["sold"]) == (8, 0, 2)

    # The latest orders, newest placed first; the inventory in pages with a cursor
    recent = [o["orderId"] for o in get(w, "/orders?limit=10").json["orders"]]
    assert recent[:3] == ["web-3", "web-1", "web-2"]  # web-2 (v1) carries an older timestamp
    page1 = get(w, "/inventory?limit=1").json
    page2 = get(w, f"/inventory?limit=1&after={page1['next']}").json
    assert [p["productId"] for p in page1["products"] + page2["products"]] == ["SKU-A", "SKU-B"]
    assert page2["next"] is None

    # Bad input and unknown things: readable JSON errors, never a stack trace
    errors = {
        "not json": call(w, "POST", "/orders", b"{nope"),
        "no items": call(w, "POST", "/orders", {"data": {"orderId": "x", "totalAmount": 1.0}}),
        "zero qty": call(
            w,
            "POST",
            "/orders",
            {
                "data": {
                    "orderId": "x",
                    "totalAmount": 1.0,
                    "items": [{"productId": "A", "quantity": 0}],
                }
            },
        ),
        "bad wait": get(w, "/orders/web-1?wait=soon"),
        "bad limit": get(w, "/inventory?limit=0"),
        "zero delta": call(w, "POST", "/inventory/SKU-A/adjust", {"delta": 0}, AUTH),
    }
    for name, answer in errors.items():
        assert answer.status == 400, (name, answer.text)
        assert answer.headers["Content-Type"].startswith("application/json"), name
        assert answer.json["error"], name
    assert "items" in errors["no items"].json["error"]
    assert "quantity" in errors["zero qty"].json["error"]
    started = time.monotonic()
    missing = get(w, "/orders/never-placed?wait=1")
    assert missing.status == 404 and "never-placed" in missing.json["error"]
    assert time.monotonic() - started >= 1.0
    for path in ("/inventory/NOPE", "/no/such/page", "/table", "/router", "/table/orders"):
        answer = get(w, path)
        assert answer.status == 404 and "error" in answer.json, path
    # Path parameters are validated, bodies are bounded
    for path in ("/orders/bad%20id", "/orders/" + "x" * 65, "/inventory/%3Cscript%3E"):
        answer = get(w, path)
        assert answer.status == 400 and "invalid" in answer.json["error"], path
    too_big = call(
        w, "POST", "/orders", b"{" + b" " * (70 * 1024) + b"}", {"Content-Type": "application/json"}
    )
    assert too_big.status == 413 and "error" in too_big.json
    wrong_method = call(w, "DELETE", "/orders")
    assert wrong_method.status == 405 and "error" in wrong_method.json

    # The admin endpoint wants the token
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        denied = call(w, "POST", "/inventory/SKU-A/adjust", {"delta": 1}, headers)
        assert denied.status == 401 and "Bearer" in denied.json["error"]
        assert denied.headers["WWW-Authenticate"].startswith("Bearer")

    # Health and metrics are served too
    assert get(w, "/healthz").json == {"status": "alive"}
    ready = get(w, "/readyz").json
    assert ready["ready"] is True and ready["active_remaining"] == 0, ready
    assert ready["standby_partitions"] == 0, ready  # one worker: nobody to be a replica for
    metrics = get(w, "/metrics").text
    assert 'orderstream_orders_settled_total{status="CONFIRMED"} 1.0' in metrics
    assert 'orderstream_payments_total{outcome="failed"} 1.0' in metrics
    assert "faust_messages_received_total" in metrics


def test_readyz_answers_503_until_tables_are_recovered(stack: type[Stack]) -> None:
    # Given a worker process just started (its web server comes up before the tables recover)
    s = stack()
    (port,) = free_ports(1)
    w = WorkerProcess("w1", s.dir / "w1", port, env=s.env, log_path=s.dir / "w1.log")
    s.started.append(w)
    w.start()
    # When /readyz is polled from the first answer on
    seen: list[int] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and seen[-1:] != [200]:
        with contextlib.suppress(OSError):  # not listening yet
            seen.append(get(w, "/readyz").status)
        time.sleep(0.02)
    # Then it said 503 (not ready) before it said 200, and table reads waited for it too
    assert 503 in seen and seen[-1] == 200, seen
    assert seen.index(503) < seen.index(200)
    assert get(w, "/healthz").status == 200
    # ... and a fresh worker that never wrote a table routes reads by key all the same
    assert get(w, "/orders/not-there").status == 404
    assert get(w, "/inventory/NOT-THERE").status == 404


PARTITIONS = list(range(4))  # the stack's partitions


def _ids_over_all_partitions(per_partition: int) -> list[str]:
    """Ids spread over every partition, by aiokafka's own default partitioner (not ours)."""
    ids: dict[int, list[str]] = {p: [] for p in PARTITIONS}
    n = 0
    while any(len(v) < per_partition for v in ids.values()):
        oid = f"route-{n:04d}"
        bucket = ids[int(DefaultPartitioner()(oid.encode(), PARTITIONS, PARTITIONS))]
        if len(bucket) < per_partition:
            bucket.append(oid)
        n += 1
    return sorted(i for v in ids.values() for i in v)


def _shelf(w: WorkerProcess, sku: str) -> tuple[int, int] | None:
    stock = stock_of(w, sku)
    return None if stock is None else (stock["available"], stock["sold"])


def test_two_workers_answer_every_key_from_either_worker(stack: type[Stack]) -> None:
    # Given two workers sharing the four partitions, and products spread over the partitions
    s = stack(admin_token=TOKEN)
    w1, w2 = s.workers("w1", "w2")
    eventually(lambda: get(w1, "/readyz").status == 200, what="w1 ready after the rebalance")
    skus = [f"RT-{n:02d}" for n in range(12)]
    for n, sku in enumerate(skus):
        restock((w1, w2)[n % 2], sku, 100)
    for sku in skus:
        eventually(lambda sku=sku: stock_of(w1, sku), what=f"{sku} restocked")
    # When orders, keyed over every partition, are posted to one worker or the other
    order_ids = _ids_over_all_partitions(per_partition=5)
    for n, oid in enumerate(order_ids):
        place((w1, w2)[n % 2], oid, [(skus[n % len(skus)], 1)], 10.0)
    # Then each order reads the same from both workers, served by the worker that owns it
    served: set[str] = set()
    for n, oid in enumerate(order_ids):
        body = settled((w1, w2)[n % 2], oid)
        assert body["status"] == "CONFIRMED", body
        views = [get(w, f"/orders/{oid}").json for w in (w1, w2)]
        assert views[0] == views[1], oid
        served.add(views[0]["servedBy"])
        history = [get(w, f"/orders/{oid}/events").json for w in (w1, w2)]
        assert (
            history[0] == history[1] and history[0]["events"][-1]["eventType"] == "OrderConfirmed"
        )
    assert served == {f"http://127.0.0.1:{w.web_port}" for w in (w1, w2)}, served

    # ... and so does every product, one by one and as a list merged from both workers
    sold = {
        sku: sum(1 for n in range(len(order_ids)) if skus[n % len(skus)] == sku) for sku in skus
    }
    for sku in skus:
        # (a confirmed order's commit reaches the product's owner with the next offset commit)
        want = (100 - sold[sku], sold[sku])
        eventually(lambda sku=sku, want=want: _shelf(w1, sku) == want, what=f"{sku} {want}")
        views = [get(w, f"/inventory/{sku}").json for w in (w1, w2)]
        assert views[0] == views[1], sku
        assert (views[0]["available"], views[0]["sold"]) == want, sku
    lists = [get(w, "/inventory?limit=500").json for w in (w1, w2)]
    assert lists[0] == lists[1]
    assert [p["productId"] for p in lists[0]["products"]] == skus
    # ... and the latest orders come from every partition, whichever worker is asked
    recent = [get(w, f"/orders?limit={len(order_ids)}").json["orders"] for w in (w1, w2)]
    assert recent[0] == recent[1]
    assert sorted(o["orderId"] for o in recent[0]) == order_ids


async def _legacy_history(s: Stack, customer: str, summary: OrderSummary) -> None:
    """A history as a version before the parts recorded it: keyed by customer, in the
    customer's partition, its listed summary keyed by order."""
    head = CustomerOrders(
        customerId=customer,
        recent=[OrderRef(orderId=summary.orderId, placedAt=summary.placedAt)],
        placed=3,  # two of them no longer listed
        confirmed=2,
        spentCents=4000,
        applied={"p0": 7},
    )
    topic = changelog_topic(s.settings, "customer_orders")
    partition = key_hash(customer.encode()) % s.settings.partitions
    producer = AIOKafkaProducer(bootstrap_servers=s.settings.bootstrap_servers)
    await producer.start()
    try:
        for key, value in (
            (f"{customer}/{summary.orderId}", encode_state(summary)),
            (customer, encode_state(head)),
        ):
            await producer.send_and_wait(topic, value, key=key.encode(), partition=partition)
    finally:
        await producer.stop()


def test_a_history_recorded_before_the_parts_is_shown_with_the_new_orders(
    stack: type[Stack],
) -> None:
    # Given a customer history left in the changelog by an earlier version
    s = stack(admin_token=TOKEN)
    old = OrderSummary(
        orderId="old-1",
        customerId="c-upgraded",
        status="CONFIRMED",
        totalCents=2000,
        placedAt=datetime(2026, 1, 2, tzinfo=UTC),
        settledAt=datetime(2026, 1, 2, 0, 0, 1, tzinfo=UTC),
        lines=[],
        eventId="e-old-1",
        origin=Origin(partition=0, offset=7),
    )
    asyncio.run(_legacy_history(s, "c-upgraded", old))
    # When a worker of this version starts and the customer orders again
    w = s.worker()
    restock(w, "SKU-U", 10)
    eventually(lambda: (stock_of(w, "SKU-U") or {}).get("available") == 10, what="restock")
    body = {
        "eventType": "OrderPlaced",
        "data": {
            "orderId": "new-1",
            "customerId": "c-upgraded",
            "items": [{"productId": "SKU-U", "quantity": 1, "price": 15.0}],
            "totalAmount": 15.0,
        },
    }
    assert call(w, "POST", "/orders", body).status == 202
    assert settled(w, "new-1")["status"] == "CONFIRMED"

    # Then the history shows the order from before and the new one, and the totals of both
    def history() -> dict[str, Any] | None:
        answer = get(w, "/customers/c-upgraded/orders?limit=10").json
        return answer if answer["totals"]["orders"] == 4 else None

    view = eventually(history, what="the new order in the history")
    assert [o["orderId"] for o in view["orders"]] == ["new-1", "old-1"]
    assert view["totals"] == {"orders": 4, "confirmed": 3, "spent": 55.0}

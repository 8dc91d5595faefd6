"""A tiny blocking HTTP client for the web tests (status, headers, JSON body), and the calls
they make over and over: restock, place an order, follow it until it settles."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from devtools.workers import WorkerProcess

TOKEN = "web-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TERMINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return orjson.loads(self.text)


def call(
    worker: WorkerProcess | int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 40.0,
) -> Answer:
    port = worker if isinstance(worker, int) else worker.web_port
    data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return Answer(resp.status, dict(resp.headers), resp.read().decode())
    except urllib.error.HTTPError as err:
        return Answer(err.code, dict(err.headers), err.read().decode())


def get(worker: WorkerProcess | int, path: str) -> Answer:
    return call(worker, "GET", path)


def eventually(probe: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll until `probe()` returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)


def restock(w: WorkerProcess, sku: str, delta: int) -> None:
    answer = call(w, "POST", f"/inventory/{sku}/adjust", {"delta": delta}, AUTH)
    assert answer.status == 202, answer.text


def place(w: WorkerProcess, order_id: str, items: list[tuple[str, int]], total: float) -> None:
    body = {
        "eventType": "OrderPlaced",
        "data": {
            "orderId": order_id,
            "customerId": "C-web",
            "items": [{"productId": p, "quantity": q, "price": 1.0} for p, q in items],
            "totalAmount": total,
        },
    }
    answer = call(w, "POST", "/orders", body)
    assert answer.status == 202, answer.text
    assert answer.headers["Location"] == f"/orders/{order_id}"


def settled(w: WorkerProcess, order_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
    """Follow an order with long polls (?wait, ?changed_from) until its status is terminal."""
    deadline = time.monotonic() + timeout_s
    status: str | None = None
    while time.monotonic() < deadline:
        changed_from = f"&changed_from={status}" if status else ""
        answer = get(w, f"/orders/{order_id}?wait=10{changed_from}")
        assert answer.status in (200, 404, 503), answer.text  # 503: a rebalance is under way
        if answer.status == 200:
            body: dict[str, Any] = answer.json
            status = body["status"]
            if status in TERMINAL:
                return body
    raise AssertionError(f"order {order_id} not settled after {timeout_s:.0f}s (last: {status})")


def stock_of(w: WorkerProcess, sku: str) -> dict[str, Any] | None:
    answer = get(w, f"/inventory/{sku}")
    return answer.json if answer.status == 200 else None

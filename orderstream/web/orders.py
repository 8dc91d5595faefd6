"""The order service over HTTP: place an order, read it (long-polling for a change), read its
history, and list the latest orders of the whole cluster."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from faust.web import Request, Response, View

from orderstream.contracts.events import utcnow
from orderstream.domain.saga import OrderState
from orderstream.errors import EventError
from orderstream.observability import tracing
from orderstream.web import bodies, query
from orderstream.web.cluster import from_every_worker, routed
from orderstream.web.delivery import delivered
from orderstream.web.health import require_ready
from orderstream.web.readmodel import order_history, order_summary, order_view
from orderstream.web.recent import KEEP, recent_orders
from orderstream.worker.app import app, publish, settings
from orderstream.worker.tables.orders import get_order, orders_table
from orderstream.worker.tables.payments import get_payment

POLL_S = 0.1  # how often a long-polling request looks at the table again


def served_by() -> str:
    """Which worker answered (a request for a key another worker owns is routed there)."""
    return str(app.conf.canonical_url)


@app.page("/orders")
class Orders(View):
    @tracing.server_span("order-service POST /orders")
    async def post(self, request: Request) -> Response:
        """Validate, publish OrderPlaced, answer 202 once Kafka has it."""
        try:
            event = bodies.order_placed(await request.read(), utcnow())
        except EventError as exc:
            raise self.ValidationError(exc.message, kind=exc.kind) from None
        await delivered(await publish(event))
        location = f"/orders/{event.data.orderId}"
        body = {"orderId": event.data.orderId, "eventId": event.eventId, "location": location}
        return self.json(body, status=202, headers={"Location": location})

    async def get(self, request: Request) -> Response:
        """The latest orders of every worker, newest placed first."""
        require_ready()
        limit = query.integer(request, "limit", 20, 1, KEEP)

        async def local() -> dict[str, Any]:
            return {"orders": [order_summary(o) for o in recent_orders.orders()[:limit]]}

        if request.query.get("scope") == "local":
            return self.json(await local())
        shares = await from_every_worker(orders_table, request, local)
        rows = [row for share in shares for row in share["orders"]]
        rows.sort(key=lambda r: datetime.fromisoformat(r["placedAt"]), reverse=True)
        return self.json({"orders": rows[:limit]})


@app.page("/orders/{order_id}")
class Order(View):
    @routed(orders_table, "order_id")
    async def get(self, request: Request, order_id: str) -> Response:
        """?wait=S answers once the status differs from the one at the request (or from
        ?changed_from=STATUS), is terminal, or after S seconds; an order not yet there counts
        as a status of its own, so a GET right after the POST waits for the order to appear."""
        require_ready()
        wait_s = query.number(request, "wait", 0.0, 0.0, settings.web_wait_max_s)
        order = get_order(order_id)
        if wait_s > 0:
            known = request.query.get("changed_from", order.status if order else None)
            order = await _changed(order_id, known, wait_s)
        if order is None:
            raise self.NotFound(f"no order {order_id!r}")
        view = order_view(order, order.payment or get_payment(order_id))
        return self.json({**view, "servedBy": served_by()})


@app.page("/orders/{order_id}/events")
class OrderEvents(View):
    @routed(orders_table, "order_id")
    async def get(self, request: Request, order_id: str) -> Response:
        require_ready()
        order = get_order(order_id)
        if order is None:
            raise self.NotFound(f"no order {order_id!r}")
        body = {"orderId": order_id, "events": order_history(order), "servedBy": served_by()}
        return self.json(body)


async def _changed(order_id: str, known: str | None, wait_s: float) -> OrderState | None:
    """The order once its status is no longer `known` or cannot change any more, or as it is
    when the wait is over."""
    deadline = time.monotonic() + wait_s
    while True:
        order = get_order(order_id)
        status = order.status if order else None
        settled = order is not None and order.terminal
        if status != known or settled or time.monotonic() >= deadline:
            return order
        await asyncio.sleep(POLL_S)

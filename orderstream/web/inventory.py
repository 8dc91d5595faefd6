"""Stock over HTTP: one product (routed to its owner), every product (paged, from all
workers), and stock adjustments behind the admin token."""

from __future__ import annotations

import hmac
from typing import Any

from faust.web import Request, Response, View

from orderstream.contracts.events import utcnow
from orderstream.domain.inventory import ProductStock
from orderstream.domain.state import decode_state
from orderstream.errors import EventError
from orderstream.web import bodies, query
from orderstream.web.cluster import from_every_worker, routed
from orderstream.web.delivery import delivered
from orderstream.web.health import require_ready
from orderstream.web.orders import served_by
from orderstream.web.readmodel import stock_view
from orderstream.worker.app import app, publish, settings
from orderstream.worker.tables.inventory import get_stock, stock_table

PAGE_MAX = 500


def _local_page(after: str, limit: int) -> dict[str, Any]:
    """This worker's products after the cursor, in productId order; `more` if it has others."""
    cursor = after.encode()
    keys = sorted(k for k in stock_table if k > cursor)
    page = [decode_state(stock_table[k], ProductStock) for k in keys[:limit]]
    return {"products": [stock_view(s) for s in page], "more": len(keys) > limit}


@app.page("/inventory")
class Inventory(View):
    async def get(self, request: Request) -> Response:
        """?limit=N&after=SKU: N products after SKU; `next` is the cursor of the next page."""
        require_ready()
        limit = query.integer(request, "limit", 100, 1, PAGE_MAX)
        after = request.query.get("after", "")

        async def local() -> dict[str, Any]:
            return _local_page(after, limit)

        if request.query.get("scope") == "local":
            return self.json(await local())
        shares = await from_every_worker(stock_table, request, local)
        rows = sorted((r for s in shares for r in s["products"]), key=lambda r: r["productId"])
        more = len(rows) > limit or any(s["more"] for s in shares)
        page = rows[:limit]
        return self.json({"products": page, "next": page[-1]["productId"] if more else None})


@app.page("/inventory/{sku}")
class Product(View):
    @routed(stock_table, "sku")
    async def get(self, request: Request, sku: str) -> Response:
        require_ready()
        stock = get_stock(sku)
        if stock is None:
            raise self.NotFound(f"no product {sku!r}")
        return self.json({**stock_view(stock), "servedBy": served_by()})


@app.page("/inventory/{sku}/adjust")
class Adjust(View):
    async def post(self, request: Request, sku: str) -> Response:
        """Restock or correct: {"delta": n, "reason": "restock"|"correction", "adjustmentId"?}.
        Answers 202 once Kafka has the StockAdjusted; GET /inventory/{sku} shows the result."""
        if not _authorized(request):
            return self.error(
                401,
                "send the admin token as 'Authorization: Bearer <token>' (ORDERSTREAM_ADMIN_TOKEN)",
                headers={"WWW-Authenticate": 'Bearer realm="orderstream"'},
            )
        try:
            event = bodies.stock_adjusted(sku, await request.read(), utcnow())
        except EventError as exc:
            raise self.ValidationError(exc.message, kind=exc.kind) from None
        await delivered(await publish(event))
        location = f"/inventory/{sku}"
        body = {"productId": sku, "adjustmentId": event.data.adjustmentId, "location": location}
        return self.json(body, status=202, headers={"Location": location})


def _authorized(request: Request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.admin_token.get_secret_value()
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode()
    )

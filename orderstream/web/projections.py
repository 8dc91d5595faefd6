"""Read models over HTTP: a customer's order history and a product's sales per hour. A product's
sales are served by the worker that owns the key (Faust's table_route); a customer's history is
kept in parts, one per saga partition (orderstream/worker/customer_history.py), merged from
every worker's. Any worker answers the same."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from orderstream.contracts.events import utcnow
from orderstream.domain.projections import (
    HISTORY_LIMIT,
    SALES_RETENTION_H,
    OrderSummary,
    ProductSales,
    customer_view,
    history_key,
    merge_views,
    sales_view,
    sum_totals,
    summary_of_state,
)
from orderstream.web import query
from orderstream.web.cluster import active_partitions, from_every_worker, owns, path_id, routed
from orderstream.web.health import require_ready
from orderstream.web.orders import served_by
from orderstream.worker.app import app
from orderstream.worker.tables.customer_orders import customer_orders_table, get_history, get_listed
from orderstream.worker.tables.orders import get_order
from orderstream.worker.tables.product_sales import get_sales, product_sales_table


@app.page("/customers/{customer_id}/orders")
class CustomerOrdersView(View):
    async def get(self, request: Request, customer_id: str) -> Response:
        """?limit=N: the customer's N latest settled orders (newest placed first) and totals."""
        require_ready()
        customer_id = path_id(request, "customer_id")
        limit = query.integer(request, "limit", 20, 1, HISTORY_LIMIT)
        key_of = customer_id.encode()

        async def local() -> dict[str, Any]:
            """The parts of the history in this worker's partitions, merged."""
            parts = []
            for p in active_partitions(customer_orders_table):
                key = history_key(customer_id, p)
                history = get_history(key)
                if history is not None:
                    parts.append(customer_view(history, key, limit, get_listed, _settled))
            legacy = get_history(customer_id) if owns(customer_orders_table, key_of) else None
            if legacy is not None:  # recorded by customer, before the parts: kept as it was
                parts.append(customer_view(legacy, customer_id, limit, get_listed, _settled))
            return merge_part(parts)

        if request.query.get("scope") == "local":
            return self.json(await local())
        shares = await from_every_worker(customer_orders_table, request, local)
        view = merge_views(customer_id, shares, limit, listed=False)
        return self.json({**view, "servedBy": served_by()})


def _settled(order_id: str) -> OrderSummary | None:
    """A listed order's summary: its settled saga state (in this worker: the part's partition)."""
    return summary_of_state(get_order(order_id))


def merge_part(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Parts of one worker as one part (what `customer_view` gives), for `merge_views`."""
    return {
        "orders": [o for p in parts for o in p["orders"]],  # not `listed`: for the replay
        "totals": sum_totals(parts),
    }


@app.page("/sales/{sku}")
class ProductSalesView(View):
    @routed(product_sales_table, "sku")
    async def get(self, request: Request, sku: str) -> Response:
        """?hours=N: units, revenue and orders per hour for the last N hours, and their sum."""
        require_ready()
        hours = query.integer(request, "hours", 24, 1, SALES_RETENTION_H)
        sales = get_sales(sku) or ProductSales(productId=sku)
        return self.json({**sales_view(sales, utcnow(), hours), "servedBy": served_by()})

"""Read models over HTTP: a customer's order history and a product's sales per hour. Each key is
served by the worker that owns it (Faust's table_route), so any worker answers the same."""

from __future__ import annotations

from faust.web import Request, Response, View

from orderstream.contracts.events import utcnow
from orderstream.domain.projections import (
    HISTORY_LIMIT,
    SALES_RETENTION_H,
    CustomerOrders,
    ProductSales,
    customer_view,
    sales_view,
)
from orderstream.web import query
from orderstream.web.cluster import routed
from orderstream.web.health import require_ready
from orderstream.web.orders import served_by
from orderstream.worker.app import app
from orderstream.worker.tables.customer_orders import customer_orders_table, get_history, get_listed
from orderstream.worker.tables.product_sales import get_sales, product_sales_table


@app.page("/customers/{customer_id}/orders")
class CustomerOrdersView(View):
    @routed(customer_orders_table, "customer_id")
    async def get(self, request: Request, customer_id: str) -> Response:
        """?limit=N: the customer's N latest settled orders (newest placed first) and totals."""
        require_ready()
        limit = query.integer(request, "limit", 20, 1, HISTORY_LIMIT)
        history = get_history(customer_id) or CustomerOrders(customerId=customer_id)
        view = customer_view(history, get_listed, limit)
        return self.json({**view, "servedBy": served_by()})


@app.page("/sales/{sku}")
class ProductSalesView(View):
    @routed(product_sales_table, "sku")
    async def get(self, request: Request, sku: str) -> Response:
        """?hours=N: units, revenue and orders per hour for the last N hours, and their sum."""
        require_ready()
        hours = query.integer(request, "hours", 24, 1, SALES_RETENTION_H)
        sales = get_sales(sku) or ProductSales(productId=sku)
        return self.json({**sales_view(sales, utcnow(), hours), "servedBy": served_by()})

"""Read model: units, revenue and orders per product per hour (tumbling hourly windows kept
for SALES_RETENTION_H hours in event time), keyed by productId."""

from __future__ import annotations

from orderstream.domain.projections import ProductSales
from orderstream.worker.app import raw_table
from orderstream.worker.tables.model_table import ModelTable

# Flushed first: after a crash in the middle of a flush the sales are never behind the stock, so
# a commit redelivered to a stock that applied it has its sale recorded already (no marker needed
# to tell it: orderstream/worker/agents/inventory.py).
product_sales_table = raw_table(
    "product_sales",
    "Hourly sales per product, keyed by productId.",
    replayable=True,
    flush_first=True,
)
_models = ModelTable(product_sales_table, ProductSales)


def get_sales(product_id: str) -> ProductSales | None:
    return _models.get(product_id)


def put_sales(sales: ProductSales) -> None:
    _models.put(sales.productId, sales)

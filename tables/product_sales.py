"""Read model: units, revenue and orders per product per hour (tumbling hourly windows kept
for SALES_RETENTION_H hours in event time), keyed by productId."""

from __future__ import annotations

from app.application import raw_table
from app.domain.projections import ProductSales

product_sales_table = raw_table("product_sales", "Hourly sales per product, keyed by productId.")


def get_sales(product_id: str) -> ProductSales | None:
    raw = product_sales_table.get(product_id.encode())
    return None if raw is None else ProductSales.model_validate_json(raw)


def put_sales(sales: ProductSales) -> None:
    product_sales_table[sales.productId.encode()] = sales.model_dump_json().encode()

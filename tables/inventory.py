"""Stock per product (available, held, sold, holds per order): changelog-backed RocksDB."""

from __future__ import annotations

from app.application import raw_table
from app.domain.inventory import ProductStock

stock_table = raw_table("inventory", "Stock per product, keyed by productId.")


def get_stock(product_id: str) -> ProductStock | None:
    raw = stock_table.get(product_id.encode())
    return None if raw is None else ProductStock.model_validate_json(raw)


def put_stock(stock: ProductStock) -> None:
    stock_table[stock.productId.encode()] = stock.model_dump_json().encode()

"""Stock per product (available, held, sold, holds per order): changelog-backed RocksDB."""

from __future__ import annotations

from orderstream.domain.inventory import ProductStock
from orderstream.worker.app import raw_table
from orderstream.worker.tables.model_table import ModelTable

# Written back once per commit: the stock changes only by its command log (stock adjustments
# are relayed into it: orderstream/worker/agents/inventory.py), so a replay decides the same.
stock_table = raw_table("inventory", "Stock per product, keyed by productId.", replayable=True)
_models = ModelTable(stock_table, ProductStock)


def get_stock(product_id: str) -> ProductStock | None:
    return _models.get(product_id)


def put_stock(stock: ProductStock) -> None:
    _models.put(stock.productId, stock)

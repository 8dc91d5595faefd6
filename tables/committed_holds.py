"""The orders whose hold of a product was committed, keyed by productId and orderId: a reserve
for such an order (re-sent by a saga whose state was rebuilt behind the commit it had already
sent) must not make a new hold, which a re-sent commit would sell a second time."""

from __future__ import annotations

from app import chaos
from app.application import raw_table

committed_table = raw_table(
    "committed_holds", "Committed holds, keyed by productId and orderId (inventory)."
)


def _key(product_id: str, order_id: str) -> bytes:
    return f"{product_id}\x1f{order_id}".encode()


def was_committed(product_id: str, order_id: str) -> bool:
    return committed_table.get(_key(product_id, order_id)) is not None


def mark_committed(product_id: str, order_id: str) -> None:
    chaos.store_write()
    committed_table[_key(product_id, order_id)] = b"1"

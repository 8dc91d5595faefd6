"""The orders whose hold of a product was committed, keyed by productId and orderId: a reserve
for such an order (re-sent by a saga whose state was rebuilt behind the commit it had already
sent) must not make a new hold, which a re-sent commit would sell a second time. Unless the
stock has not applied the commit the marker names: a crash kept the marker's write and lost the
stock's, the reserve is the original one come again, and it holds (`was_committed`).

The marker also names the commit that sold the hold, by its offset (in the product's partition
of inventory-requests): that record, and no other, records the sale
(orderstream/worker/agents/inventory.py). A commit that found no hold to sell marks "committed, sold
by a record not known" where nothing was marked (the value every marker had before sales were
recorded by the inventory).

Kept only where settings.hold_markers says so (`ENABLED`): where the saga's commits go in batches
at least once (the default), no reserve comes after its order's commit and a commit's sale is
recorded before its stock is flushed, and no marker is written (one changelog record per order
line saved)."""

from __future__ import annotations

from orderstream.worker import chaos
from orderstream.worker.app import raw_table, settings

ENABLED = settings.hold_markers

# Written through at least once, while the stock writes back: a marker must outlive a crash
# that loses the stock's values of the records not committed yet (`was_committed`), and each
# order line has its own key (nothing to coalesce).
committed_table = raw_table(
    "committed_holds", "Committed holds, keyed by productId and orderId (inventory)."
)

_UNKNOWN = b"1"  # committed; which record sold the hold is not known
_SOLD = b"sold@"  # + the offset of the commit that sold the hold


def _key(product_id: str, order_id: str) -> bytes:
    return f"{product_id}\x1f{order_id}".encode()


def _seller(raw: bytes) -> int | None:
    return int(raw[len(_SOLD) :]) if raw.startswith(_SOLD) else None


def was_committed(product_id: str, order_id: str, stock_upto: int) -> bool:
    """Whether the order's hold of the product was committed by a commit the stock has applied:
    `stock_upto` is the stock's watermark on the topic the commits come from. A marker naming a
    commit past it was written ahead of the stock's own writes, which a crash lost: that commit
    comes again, and the reserve before it must hold again for it to sell (else the order's
    units were never taken off the stock). A marker whose seller is not known counts."""
    raw = committed_table.get(_key(product_id, order_id))
    if raw is None:
        return False
    seller = _seller(raw)
    return seller is None or seller <= stock_upto


def mark_committed(product_id: str, order_id: str, sold_by: int | None = None) -> int | None:
    """Mark the order's hold of the product committed and return the offset of the commit that
    sold it (None: not known). `sold_by`: the offset of this commit, which sold the hold. Else
    an existing marker stays as it is (written again: its changelog write may have been lost)
    and a new one says the seller is not known."""
    key = _key(product_id, order_id)
    if sold_by is not None:
        raw = _SOLD + str(sold_by).encode()
    else:
        raw = committed_table.get(key) or _UNKNOWN
    chaos.store_write()
    committed_table[key] = raw
    return _seller(raw)

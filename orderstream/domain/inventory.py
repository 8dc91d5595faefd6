"""Stock per product with holds per order: reserve, release, commit, adjust. All idempotent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import msgspec

from orderstream.contracts.events import (
    CommitStock,
    InventoryInput,
    ReleaseStock,
    ReserveStock,
    StockAdjusted,
    StockRejected,
    StockReserved,
    StockResult,
    event_id,
    utcnow,
)
from orderstream.domain.common import Decision, RuleViolation
from orderstream.domain.state import State, replace

RECENT_ADJUSTMENTS = 256  # adjustment ids remembered per product to drop re-sent adjustments


class ProductStock(State, frozen=True, kw_only=True):
    productId: str
    available: Annotated[int, msgspec.Meta(ge=0)] = 0
    held: int = 0
    sold: int = 0
    restocked: int = 0  # net of all adjustments: the stock ever put on the shelf
    holds: dict[str, int] = {}
    recentAdjustments: list[str] = []
    applied: dict[str, int] = {}

    def conserved(self) -> bool:
        """The invariant: nothing created or lost, nothing negative."""
        return (
            self.restocked == self.available + self.held + self.sold
            and self.held == sum(self.holds.values())
            and self.available >= 0
            and all(q > 0 for q in self.holds.values())
        )


def _reserved(cmd: ReserveStock) -> StockReserved:
    line = cmd.data
    return StockReserved(
        eventId=event_id("StockReserved", line.orderId, line.productId),
        timestamp=utcnow(),
        causationId=cmd.eventId,
        data=StockResult(orderId=line.orderId, productId=line.productId, quantity=line.quantity),
    )


def _rejected(cmd: ReserveStock, reason: str) -> StockRejected:
    line = cmd.data
    return StockRejected(
        eventId=event_id("StockRejected", line.orderId, line.productId),
        timestamp=utcnow(),
        causationId=cmd.eventId,
        data=StockResult(
            orderId=line.orderId, productId=line.productId, quantity=line.quantity, reason=reason
        ),
    )


def reserve(
    stock: ProductStock | None, cmd: ReserveStock, committed: bool = False
) -> Decision[ProductStock]:
    """Hold the line for its order. `committed`: this order's hold of the product was committed
    before (the reserve is a re-send): answered as reserved, and nothing is held again."""
    order, qty = cmd.data.orderId, cmd.data.quantity
    if stock is None:
        return Decision(emit=[_rejected(cmd, "unknown_product")])
    if order in stock.holds or committed:  # the same reservation again: answer, hold once
        return Decision(emit=[_reserved(cmd)], duplicate=True)
    if stock.available < qty:
        return Decision(emit=[_rejected(cmd, "out_of_stock")])
    new = replace(
        stock,
        available=stock.available - qty,
        held=stock.held + qty,
        holds={**stock.holds, order: qty},
    )
    return Decision(new, [_reserved(cmd)])


def _settle_hold(
    stock: ProductStock | None, order: str, to: Literal["available", "sold"]
) -> Decision[ProductStock]:
    """Take the order's hold off the stock, back to `available` (release) or to `sold`
    (commit); a hold already taken is a repeat."""
    if stock is None or order not in stock.holds:
        return Decision(duplicate=True)
    holds = dict(stock.holds)
    qty = holds.pop(order)
    return Decision(
        replace(stock, held=stock.held - qty, holds=holds, **{to: getattr(stock, to) + qty})
    )


def release(stock: ProductStock | None, cmd: ReleaseStock) -> Decision[ProductStock]:
    return _settle_hold(stock, cmd.data.orderId, "available")


def commit(stock: ProductStock | None, cmd: CommitStock) -> Decision[ProductStock]:
    return _settle_hold(stock, cmd.data.orderId, "sold")


def commit_all(
    stock: ProductStock | None, cmds: Sequence[CommitStock]
) -> tuple[ProductStock | None, list[Decision[ProductStock]]]:
    """Commit several holds of one product in turn (a batch's commits of that product): the
    stock after them (None: unchanged) and each commit's decision (a new state: it sold its
    hold; a duplicate: the hold was taken already)."""
    decisions = []
    changed: ProductStock | None = None
    for cmd in cmds:
        decision = commit(changed or stock, cmd)
        decisions.append(decision)
        changed = decision.state or changed
    return changed, decisions


def adjust(stock: ProductStock | None, cmd: StockAdjusted) -> Decision[ProductStock]:
    adj = cmd.data
    stock = stock or ProductStock(productId=adj.productId)
    if adj.adjustmentId in stock.recentAdjustments:
        return Decision(duplicate=True)
    if stock.available + adj.delta < 0:
        raise RuleViolation(
            "insufficient_stock",
            f"correction {adj.delta} on {adj.productId} exceeds the {stock.available} available",
        )
    recent = [*stock.recentAdjustments, adj.adjustmentId][-RECENT_ADJUSTMENTS:]
    return Decision(
        replace(
            stock,
            available=stock.available + adj.delta,
            restocked=stock.restocked + adj.delta,
            recentAdjustments=recent,
        )
    )


def apply(
    stock: ProductStock | None, cmd: InventoryInput, committed: bool = False
) -> Decision[ProductStock]:
    """Route one inventory input to its rule (`committed`: see `reserve`)."""
    if isinstance(cmd, ReserveStock):
        return reserve(stock, cmd, committed)
    if isinstance(cmd, ReleaseStock):
        return release(stock, cmd)
    if isinstance(cmd, CommitStock):
        return commit(stock, cmd)
    if isinstance(cmd, StockAdjusted):
        return adjust(stock, cmd)
    state, _ = commit_all(stock, cmd.data.commits)
    return Decision(state, duplicate=state is None)


def redelivered(stock: ProductStock | None, cmd: InventoryInput) -> list[StockReserved]:
    """Answer a redelivered reserve again (its answer may have been lost in the crash)."""
    if isinstance(cmd, ReserveStock) and stock is not None and cmd.data.orderId in stock.holds:
        return [_reserved(cmd)]
    return []

"""Inventory agent: reserve / release / commit holds and apply stock adjustments, per product."""

from __future__ import annotations

from functools import partial
from typing import Any

from app import metrics
from app.application import app, publish, topic
from app.deadletter import guarded
from app.domain import inventory
from app.domain.common import already_applied, stamp
from app.events import CommitStock, Event, InventoryInput, ReserveStock, decode
from app.repartition import rehomed
from app.topics import accepted_types
from app.tracing import traced
from tables.committed_holds import mark_committed, was_committed
from tables.inventory import get_stock, put_stock

ACCEPT = accepted_types("inventory_requests", "stock_adjustments")


@app.agent(topic("inventory_requests", "stock_adjustments"), name="inventory")
async def inventory_agent(stream: Any) -> None:
    async for event in stream.events():
        with traced(event, "inventory"):
            await guarded("inventory", event, partial(_handle, event))


async def _handle(event: Any) -> None:
    msg = event.message
    cmd: InventoryInput = decode(event.value, ACCEPT)  # type: ignore[assignment]
    if await rehomed(event, cmd):  # placed by another partitioner: applied where it belongs
        return
    stock = get_stock(cmd.data.productId)
    if stock is not None and already_applied(stock.applied, msg.topic, msg.offset):
        put_stock(stock)  # its changelog write may have been lost (not committed over)
        emit: list[Event] = list(inventory.redelivered(stock, cmd))
        metrics.duplicate_dropped("inventory")
    else:
        committed = isinstance(cmd, ReserveStock) and was_committed(
            cmd.data.productId, cmd.data.orderId
        )
        decision = inventory.apply(stock, cmd, committed)
        metrics.inventory_decided(decision)
        if decision.state is not None:
            put_stock(stamp(decision.state, msg.topic, msg.offset))
        emit = decision.emit
    if isinstance(cmd, CommitStock):
        # Only a confirmed order is committed, and it never needs a hold again: marked whether
        # this commit sold the hold or found it sold (again after a redelivery: its changelog
        # write may have been lost).
        mark_committed(cmd.data.productId, cmd.data.orderId)
    for out in emit:
        await publish(out)

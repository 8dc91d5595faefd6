"""Inventory agent: reserve / release / commit holds and apply stock adjustments, per product;
a commit that sells an order's hold also records the sale (read model `product_sales`, keyed by
product like the stock: the same partition, the same step).

The stock changes by one input only, its product's partition of inventory-requests (the command
log): a stock adjustment that comes in on stock-adjustments is relayed there, and applied when
it comes back in (at its place among the product's commands). A replay after a crash then meets
the same records in the same order, and the rules decide what they decided the first time:
that is what lets the stock table write back once per commit at least once
(orderstream/worker/app.py `raw_table`). Adjustments are deduplicated by id, so a relay done
again after a crash changes nothing."""

from __future__ import annotations

from functools import partial
from typing import Any

from orderstream.contracts.events import (
    CommitStock,
    CommitStockBatch,
    InventoryInput,
    ReserveStock,
    decode,
)
from orderstream.contracts.topics import accepted_types
from orderstream.domain import inventory, projections
from orderstream.domain.common import Decision
from orderstream.domain.inventory import ProductStock
from orderstream.observability import metrics, tracing
from orderstream.observability.tracing import traced
from orderstream.worker.app import app, publish, relay, topic, topic_name
from orderstream.worker.apply import apply_once
from orderstream.worker.dead_letters import guarded
from orderstream.worker.repartition import away_from_home, home_partition, rehomed
from orderstream.worker.tables import committed_holds
from orderstream.worker.tables.committed_holds import mark_committed, was_committed
from orderstream.worker.tables.inventory import get_stock, put_stock
from orderstream.worker.tables.product_sales import get_sales, put_sales

ACCEPT = accepted_types("inventory_requests", "stock_adjustments")
ADJUSTMENTS = topic_name("stock_adjustments")


@app.agent(topic("inventory_requests", "stock_adjustments"), name="inventory")
async def inventory_agent(stream: Any) -> None:
    async for event in stream.events():
        with traced(event, "inventory"):
            await guarded("inventory", event, partial(_handle, event))


async def _handle(event: Any) -> None:
    cmd: InventoryInput = decode(event.value, ACCEPT)  # type: ignore[assignment]
    if event.message.topic == ADJUSTMENTS:  # into the command log, applied from there
        if away_from_home(event, cmd):  # under its product's key: rehomed on the way
            metrics.record_repartitioned(ADJUSTMENTS)
        key = cmd.data.productId
        await relay("inventory_requests", key, cmd, event.value, dict(event.headers or {}))
        return
    if await rehomed(event, cmd):  # placed by another partitioner: applied where it belongs
        return
    if isinstance(cmd, CommitStockBatch):
        await _commit_batch(event, cmd)
        return
    # The stock is written last (by apply_once), after the marker and the sale: a step that
    # failed half-way (retried in place) or whose writes were partly lost comes again through
    # the rules, not as a redelivery.
    emit = await apply_once(
        "inventory",
        event,
        cmd.data.productId,
        get=get_stock,
        put=put_stock,
        decide=partial(_decide, cmd, event.message),
        redelivered=partial(_redelivered, cmd, event.message),
    )
    for out in emit:
        await publish(out)


async def _commit_batch(event: Any, batch: CommitStockBatch) -> None:
    """Each product's commits of a batch in one step of its stock, at the batch's offset; a
    commit whose product belongs to another partition (the batch was placed there by mistake)
    is sent there on its own."""
    msg = event.message
    by_product: dict[str, list[CommitStock]] = {}
    for commit in batch.data.commits:
        if home_partition(msg.topic, commit.data.productId) not in (msg.partition, None):
            await publish(commit)
            continue
        by_product.setdefault(commit.data.productId, []).append(commit)
    orders = [c.data.orderId for c in batch.data.commits]
    with tracing.each_consumed("inventory", "CommitStock", event, orders):
        for product, commits in by_product.items():
            await apply_once(
                "inventory",
                event,
                product,
                get=get_stock,
                put=put_stock,
                decide=partial(_decide_commits, commits, msg),
                redelivered=partial(_redelivered_commits, commits, msg),
            )


async def _decide_commits(
    commits: list[CommitStock], msg: Any, stock: ProductStock | None
) -> Decision[ProductStock]:
    state, decisions = inventory.commit_all(stock, commits)
    for decision in decisions:
        metrics.inventory_decided(decision)
    _committed(commits, msg, sold=[d.state is not None for d in decisions])
    return Decision(state)


async def _redelivered_commits(
    commits: list[CommitStock], msg: Any, stock: ProductStock
) -> Decision[ProductStock]:
    _committed(commits, msg, sold=[False] * len(commits))
    return Decision()


async def _decide(
    cmd: InventoryInput, msg: Any, stock: ProductStock | None
) -> Decision[ProductStock]:
    upto = -1 if stock is None else stock.applied.get(msg.topic, -1)
    committed = (
        committed_holds.ENABLED
        and isinstance(cmd, ReserveStock)
        and was_committed(cmd.data.productId, cmd.data.orderId, upto)
    )
    decision = inventory.apply(stock, cmd, committed)
    metrics.inventory_decided(decision)
    if isinstance(cmd, CommitStock):
        _committed([cmd], msg, sold=[decision.state is not None])
    return decision


async def _redelivered(
    cmd: InventoryInput, msg: Any, stock: ProductStock
) -> Decision[ProductStock]:
    if isinstance(cmd, CommitStock):
        _committed([cmd], msg, sold=[False])
    return Decision(emit=[*inventory.redelivered(stock, cmd)])


def _committed(commits: list[CommitStock], msg: Any, *, sold: list[bool]) -> None:
    """Record the sales this very record made (`sold`: a commit sold its hold now). The sales'
    own watermark drops them if they were recorded before, so a sale is recorded once however
    often its commit comes. `commits`: one product's, all of this record.

    Where committed holds are marked (settings.hold_markers), mark each order's hold of the
    product committed (its changelog write may have been lost before); a redelivery or a step
    done again knows the sale from the marker, which names the record that sold the hold. Else
    a redelivered commit's sale is recorded already: the product sales are flushed before the
    stock (orderstream/faust_ext/producer.py `Producer.flush`)."""
    made = []
    if committed_holds.ENABLED:
        seen: set[str] = set()
        for cmd, now in zip(commits, sold, strict=True):
            line = cmd.data
            seller = mark_committed(line.productId, line.orderId, msg.offset if now else None)
            if seller == msg.offset and line.orderId not in seen:  # sold by this record (not
                made.append(projections.sale_of(cmd))  # by another, or by none), counted once
            seen.add(line.orderId)
    else:
        made = [projections.sale_of(cmd) for cmd, now in zip(commits, sold, strict=True) if now]
    if not made:
        return
    before = get_sales(commits[0].data.productId)
    decision = projections.record_sales(before, made, msg.topic, msg.offset)
    if decision.duplicate:
        metrics.duplicate_dropped("projections")  # a read model's repeat
    sales = decision.state or before
    if sales is not None:
        put_sales(sales)  # again when a duplicate: its changelog write may have been lost

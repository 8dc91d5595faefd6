"""The saga's stock commits, batched: kept back until the next offset commit, then sent as one
record per partition of inventory-requests (`CommitStockBatch`), not one per order line.

A commit is the one step of an order no one waits for: the order is confirmed already, and the
commit only turns the product's hold into a sale. Sent with the flush that precedes each offset
commit (orderstream/faust_ext/producer.py `before_flush`), they cost one record written and
read per partition and commit interval instead of ~1.17 each per order, and the inventory
applies each product's commits of a batch in one step of its stock.

Nothing is lost in a crash: the saga record that decided a commit is committed over only after
the flush acknowledged its batch; a crash before that redelivers the record, whose step sends
its commit again (`saga.pending_commands`). A commit sent twice finds its hold sold (the
committed-hold marker names the record that sold it), as before.

At least once only: in exactly-once mode a commit goes out in its step's transaction
(settings.commit_batches)."""

from __future__ import annotations

from collections.abc import Iterator

from orderstream.contracts.events import (
    MAX_EVENT_BYTES,
    CommitStock,
    CommitStockBatch,
    StockCommits,
    encode,
)
from orderstream.faust_ext import producer
from orderstream.observability import tracing
from orderstream.worker.app import app, settings, topic_name
from orderstream.worker.repartition import home_partition

MAX_COMMITS = 1000  # commits per record, and a record stays below the consumers' size limit:
BUDGET = MAX_EVENT_BYTES - 1024  # bytes of its commits (the rest is the batch's envelope)
ENABLED = settings.commit_batches and not settings.exactly_once
_TOPIC = topic_name("inventory_requests")

# partition -> (commit, its trace context) in the order decided, since the last flush
_pending: dict[int, list[tuple[CommitStock, str]]] = {}


def add(cmd: CommitStock) -> None:
    """Keep a commit for the next flush, in its product's partition."""
    with tracing.producing(cmd.eventType, _TOPIC, cmd.data.orderId) as trace:
        context = tracing.carried_context(trace)
    partition = home_partition(_TOPIC, cmd.data.productId) or 0
    _pending.setdefault(partition, []).append((cmd, context))


async def send() -> None:
    """Hand every kept commit to the producer, one record per partition (and MAX_COMMITS)."""
    if not _pending:
        return
    pending = dict(_pending)
    _pending.clear()
    for partition, kept in sorted(pending.items()):
        for chunk in _chunks(kept):
            commits = [cmd for cmd, _ in chunk]
            first = commits[0]
            batch = CommitStockBatch(
                eventId=f"{first.eventId}+{len(commits) - 1}",
                timestamp=first.timestamp,
                data=StockCommits(productId=first.data.productId, commits=commits),
            )
            headers = (
                {tracing.CONTEXTS_HEADER: ",".join(c for _, c in chunk).encode()}
                if tracing.enabled()
                else None
            )
            key, value = first.data.productId.encode(), encode(batch)
            for _ in range(2 if settings.chaos_duplicate_sends else 1):
                await app.producer.send(_TOPIC, key, value, partition, None, headers)


def _chunks(kept: list[tuple[CommitStock, str]]) -> Iterator[list[tuple[CommitStock, str]]]:
    """The commits in order, cut into records of at most MAX_COMMITS and BUDGET bytes."""
    chunk: list[tuple[CommitStock, str]] = []
    size = 0
    for item in kept:
        n = len(encode(item[0])) + 1
        if chunk and (size + n > BUDGET or len(chunk) >= MAX_COMMITS):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += n
    if chunk:
        yield chunk


producer.before_flush.append(send)

"""The saga's stock commits, batched: kept back until the next offset commit, then sent as one
record per partition of inventory-requests (`CommitStockBatch`), not one per order line.

A commit is the one step of an order no one waits for: the order is confirmed already, and the
commit only turns the product's hold into a sale. Sent with the flush that precedes each offset
commit (orderstream/faust_ext/producer.py `kept_back`), they cost one record written and read
per partition and commit interval instead of ~1.17 each per order, and the inventory applies
each product's commits of a batch in one step of its stock.

Nothing is lost in a crash: the saga record that decided a commit is committed over only after
the flush acknowledged its batch; a crash before that redelivers the record, whose step sends
its commit again (`saga.pending_commands`), and a commit sent twice finds its hold sold. And a
batch is sent only once the saga states that decided its commits are acknowledged: a saga is
never rebuilt behind a commit it sent, so it never asks again for a hold that was sold (no
reserve comes after its order's commit, and the inventory keeps no committed-hold markers:
settings.hold_markers).

At least once only: in exactly-once mode a commit goes out in its step's transaction
(settings.commit_batches)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from functools import partial

from orderstream.contracts.events import (
    MAX_EVENT_BYTES,
    CommitStock,
    CommitStockBatch,
    StockCommits,
    encode,
)
from orderstream.contracts.topics import registry
from orderstream.faust_ext import producer
from orderstream.kafka.partitioner import home_of
from orderstream.observability import tracing
from orderstream.worker.app import app, settings

MAX_COMMITS = 1000  # commits per record (and a record stays below MAX_EVENT_BYTES: `_fitted`)
ENABLED = settings.commit_batches and not settings.exactly_once
_SPEC = registry(settings)["inventory_requests"]
_TOPIC = _SPEC.name

# partition -> (commit, its trace context) in the order decided, since the last flush
_pending: dict[int, list[tuple[CommitStock, str]]] = {}


def add(cmd: CommitStock) -> None:
    """Keep a commit for the next flush, in its product's partition."""
    with tracing.producing(cmd.eventType, _TOPIC, cmd.data.orderId) as trace:
        context = tracing.carried_context(trace)
    partition = home_of(_SPEC, cmd.data.productId.encode())
    _pending.setdefault(partition, []).append((cmd, context))


def take() -> Callable[[], Awaitable[None]] | None:
    """Take the commits kept so far (at the start of a flush); what sends them, once the flush
    has every record put before acknowledged (None: none kept)."""
    if not _pending:
        return None
    pending = dict(_pending)
    _pending.clear()
    return partial(_send, pending)


async def _send(pending: dict[int, list[tuple[CommitStock, str]]]) -> None:
    """Hand the commits to the producer, one record per partition (and MAX_COMMITS)."""
    for partition, kept in sorted(pending.items()):
        for start in range(0, len(kept), MAX_COMMITS):
            for chunk, batch, value in _fitted(kept[start : start + MAX_COMMITS]):
                headers = (
                    {tracing.CONTEXTS_HEADER: ",".join(c for _, c in chunk).encode()}
                    if tracing.enabled()
                    else None
                )
                key = batch.data.productId.encode()
                for _ in range(2 if settings.chaos_duplicate_sends else 1):
                    await app.producer.send(_TOPIC, key, value, partition, None, headers)


def _fitted(
    chunk: list[tuple[CommitStock, str]],
) -> Iterator[tuple[list[tuple[CommitStock, str]], CommitStockBatch, bytes]]:
    """The commits as batches in order, each encoded below the consumers' record size limit
    (cut in halves until it is: one encoding per batch that fits at once, the usual case)."""
    commits = [cmd for cmd, _ in chunk]
    first = commits[0]
    batch = CommitStockBatch(
        eventId=f"{first.eventId}+{len(commits) - 1}",
        timestamp=first.timestamp,
        data=StockCommits(productId=first.data.productId, commits=commits),
    )
    value = encode(batch)
    if len(value) <= MAX_EVENT_BYTES or len(chunk) == 1:
        yield chunk, batch, value
        return
    half = len(chunk) // 2
    yield from _fitted(chunk[:half])
    yield from _fitted(chunk[half:])


producer.kept_back.append(take)

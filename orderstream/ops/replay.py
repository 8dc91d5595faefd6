"""`orderstream replay`: rebuild the read models (customer histories, hourly sales per product)
from the beginning of their topics, with the same pure rules the agents use, and compare them
with the live read models. Histories come from the order outcomes the saga announces
(order-status, each marked with its origin), a part per order-status partition as the saga
keeps them (the saga's partitions: the same key, orderId); sales from the commits
(inventory-requests): the commit that sells an order's hold records its sale.

The rebuild is a fold in this process's memory: it joins no consumer group and writes no topic,
so it cannot disturb the running workers, and it shows exactly what the rules make of the log.
(A fresh Faust application id would rebuild into new changelogs, but its worker would run the
saga too and act on the shared topics again.) The live state is read from the read models'
changelog topics, what a worker recovers from, so no worker needs to be up to compare.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from orderstream.contracts.events import CommitStock, CommitStockBatch, StatusEvent, decode
from orderstream.contracts.topics import TopicSpec, accepted_types, changelog_topic, registry
from orderstream.domain.projections import (
    HISTORY_LIMIT,
    CustomerOrders,
    OrderSummary,
    Origin,
    ProductSales,
    Sale,
    customer_view,
    from_state,
    history_key,
    merge_views,
    record_order,
    record_sales,
    sale_of,
    summarize,
    summary_of_state,
    unlisted,
)
from orderstream.domain.saga import OrderState
from orderstream.domain.state import as_dict, decode_state
from orderstream.errors import EventError
from orderstream.kafka.auth import client_options
from orderstream.kafka.partitioner import entity_key, home_of, misplaced
from orderstream.kafka.reader import partitions_of, read_topic
from orderstream.settings import Settings

ACCEPT = accepted_types("order_status")
ACCEPT_COMMANDS = accepted_types("inventory_requests")
MODELS = ("customer_orders", "product_sales")  # the tables, by name


@dataclass
class ReadModels:
    """Every read model, by key: `apply` is what the saga does with an outcome it announces
    (orderstream/worker/customer_history.py), `apply_commits` what the inventory agent does for
    the sales."""

    customers: dict[str, CustomerOrders] = field(default_factory=dict)  # by history_key
    listed: dict[str, OrderSummary] = field(default_factory=dict)  # records, by listed_key
    # the listed orders' summaries by orderId: rebuilt, their outcomes; live, their saga states
    settled: dict[str, OrderSummary] = field(default_factory=dict)
    sales: dict[str, ProductSales] = field(default_factory=dict)
    committed: set[tuple[str, str]] = field(default_factory=set)  # (productId, orderId)

    def apply(self, outcome: StatusEvent, origin: Origin, partition: int) -> None:
        """An outcome announced in saga partition `partition`."""
        summary = summarize(outcome, origin)
        key = history_key(summary.customerId, partition)
        before = self.customers.get(key)
        history = record_order(before, summary).state
        if history is not None:
            if history.lists(summary.orderId):  # the first outcome announced is shown
                self.settled.setdefault(summary.orderId, summary)
            for ref in unlisted(before, history):
                self.settled.pop(ref.orderId, None)
            self.customers[key] = history

    def apply_commits(self, cmds: list[CommitStock], topic: str, offset: int) -> None:
        """The commits of one record at `offset` of `topic` (one, or a batch's), in their
        products' partition. The replay has no stock levels: the first commit of an order's
        line is the one that sold its hold (the saga commits a line only once it is reserved;
        a commit re-sent later finds it sold)."""
        sold: dict[str, list[Sale]] = {}
        for cmd in cmds:
            line = (cmd.data.productId, cmd.data.orderId)
            if line in self.committed:
                continue
            self.committed.add(line)
            sold.setdefault(line[0], []).append(sale_of(cmd))
        for product, sales in sold.items():
            state = record_sales(self.sales.get(product), sales, topic, offset).state
            if state is not None:
                self.sales[product] = state

    def views(self) -> dict[str, dict[str, Any]]:
        """What readers see, by model and key (without the watermarks, which are bookkeeping)."""
        return {
            "customer_orders": self._histories(),
            "product_sales": {
                k: {f: v for f, v in as_dict(s).items() if f != "applied"}
                for k, s in self.sales.items()
            },
        }

    def _histories(self) -> dict[str, dict[str, Any]]:
        """Each customer's history as readers see it (its parts merged), and which orders it
        lists (a listed order whose summary is missing shows in the second, not the first)."""
        parts: dict[str, list[dict[str, Any]]] = {}
        for key, h in self.customers.items():
            part = customer_view(h, key, HISTORY_LIMIT, self.listed.get, self.settled.get)
            parts.setdefault(h.customerId, []).append(part)
        return {c: merge_views(c, views, HISTORY_LIMIT) for c, views in sorted(parts.items())}


@dataclass
class Progress:
    done: int
    total: int
    skipped: int
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        share = 100.0 * self.done / self.total if self.total else 100.0
        rate = self.done / max(time.monotonic() - self.started, 1e-6)
        return (
            f"replayed {self.done}/{self.total} records ({share:.0f}%), "
            f"{rate:.0f} records/s, {self.skipped} skipped"
        )


async def rebuild(
    settings: Settings,
    *,
    until: datetime | None = None,
    report: Callable[[Progress], None] | None = None,
    every_s: float = 1.0,
) -> tuple[ReadModels, Progress]:
    """Fold order-status and inventory-requests from their first records to their ends at the
    start of the call (records after `until`, by Kafka timestamp, are left out: the read models
    as they were then)."""
    models = ReadModels()
    specs = registry(settings)
    outcomes, commands = specs["order_status"], specs["inventory_requests"]
    until_ms = int(until.timestamp() * 1000) if until else None
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",  # what a downstream consumer sees
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **client_options(settings),
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(spec.name, p)
            for spec in (outcomes, commands)
            for p in sorted(await partitions_of(consumer, spec.name))
        ]
        consumer.assign(tps)
        start, end = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        progress = Progress(0, sum(end[tp] - start[tp] for tp in tps), 0)
        await consumer.seek_to_beginning(*tps)
        remaining, shown = {tp for tp in tps if end[tp] > start[tp]}, time.monotonic()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for tp, records in batch.items():
                for rec in _before(records, end[tp]):
                    progress.done += 1
                    if until_ms is not None and rec.timestamp > until_ms:
                        continue
                    if tp.topic == commands.name:
                        _commit(models, commands, rec, progress)
                        continue
                    try:
                        outcome: StatusEvent = decode(rec.value, ACCEPT)  # type: ignore[assignment]
                        origin = Origin.from_headers(dict(rec.headers or ()))
                    except EventError:  # not recorded live either (no origin: an older version)
                        progress.skipped += 1
                        continue
                    models.apply(outcome, origin, rec.partition)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if report is not None and time.monotonic() - shown >= every_s:
                report(progress)
                shown = time.monotonic()
        if report is not None:
            report(progress)
        return models, progress
    finally:
        await consumer.stop()


def _commit(models: ReadModels, spec: TopicSpec, rec: Any, progress: Progress) -> None:
    """An inventory request: a commit counts where the inventory agent applies it, on its
    product's partition (a copy placed elsewhere by another partitioner is re-published there
    by the agent, and applied as that copy)."""
    try:
        cmd = decode(rec.value, ACCEPT_COMMANDS)
    except EventError:  # a dead letter for the live agent too
        progress.skipped += 1
        return
    key = entity_key(spec, cmd)
    if key is None or misplaced(rec, spec, key):
        return
    if isinstance(cmd, CommitStock):
        models.apply_commits([cmd], rec.topic, rec.offset)
    elif isinstance(cmd, CommitStockBatch):  # the commits of other partitions: sent there alone
        home = [
            c for c in cmd.data.commits if home_of(spec, c.data.productId.encode()) == rec.partition
        ]
        models.apply_commits(home, rec.topic, rec.offset)


def _before(records: list[Any], end: int) -> Iterator[Any]:
    return (r for r in records if r.offset < end)


async def live(settings: Settings) -> ReadModels:
    """The workers' read models, as their changelogs hold them (the last value per key)."""
    models = ReadModels()
    targets: dict[str, tuple[dict[str, Any], type[Any]]] = {
        "customer_orders": (models.customers, CustomerOrders),
        "product_sales": (models.sales, ProductSales),
    }
    for table, (into, model) in targets.items():
        for rec in await read_topic(settings, changelog_topic(settings, table)):
            key = rec.key.decode()
            if table == "customer_orders" and "/" in key:  # a listed order's summary
                if rec.value is None:
                    models.listed.pop(key, None)
                else:
                    models.listed[key] = decode_state(rec.value, OrderSummary)
            elif rec.value is None:
                into.pop(key, None)
            else:
                into[key] = decode_state(rec.value, model)
    wanted = {  # the listed orders summarised by their saga states
        r.orderId for k, h in models.customers.items() for r in h.recent if from_state(k, r)
    }
    if wanted:
        for rec in await read_topic(settings, changelog_topic(settings, "orders")):
            order_id = rec.key.decode()
            if order_id in wanted and rec.value is not None:
                summary = summary_of_state(decode_state(rec.value, OrderState))
                if summary is not None:
                    models.settled[order_id] = summary
    return models


def diff(live_views: dict[str, dict[str, Any]], rebuilt: dict[str, dict[str, Any]]) -> list[str]:
    """Every difference between two sets of views, one line each ('' lists: none)."""
    lines: list[str] = []
    for model in MODELS:
        a, b = live_views.get(model, {}), rebuilt.get(model, {})
        for key in sorted(set(a) | set(b)):
            if key not in b:
                lines.append(f"{model} {key}: only live")
            elif key not in a:
                lines.append(f"{model} {key}: missing live (the rebuild has it)")
            else:
                lines += [f"{model} {key}: {d}" for d in _fields(a[key], b[key], "")]
    return lines


def _fields(a: Any, b: Any, path: str) -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            yield from _fields(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _fields(x, y, f"{path}[{n}]")
    elif a != b:
        yield f"{path or 'value'}: live {_short(a)}, rebuilt {_short(b)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def summary(models: ReadModels) -> str:
    buckets = sum(len(s.hours) for s in models.sales.values())
    orders = sum(h.placed for h in models.customers.values())  # over the parts: every order
    customers = len({h.customerId for h in models.customers.values()})
    return (
        f"{orders} orders, {customers} customers, "
        f"{len(models.sales)} products ({buckets} product-hours)"
    )


async def compare(
    settings: Settings,
    *,
    until: datetime | None = None,
    wait_s: float = 0.0,
    report: Callable[[Progress], None] | None = None,
) -> tuple[ReadModels, ReadModels, list[str]]:
    """(rebuilt, live, differences); while they differ, try again for up to `wait_s` seconds
    (the workers may still be working through the end of the log)."""
    deadline = time.monotonic() + wait_s
    while True:
        rebuilt, _ = await rebuild(settings, until=until, report=report)
        current = await live(settings)
        found = diff(current.views(), rebuilt.views())
        if not found or time.monotonic() >= deadline:
            return rebuilt, current, found
        await asyncio.sleep(1.0)

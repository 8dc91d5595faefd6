"""The Faust application: `faust -A orderstream.worker.app worker`. Importing this module builds
it (and checks the Faust version, picks the event loop, configures tracing); nothing outside the
worker and its web views imports it. It imports no agents: autodiscover finds them (they import
it)."""

from __future__ import annotations

import asyncio
import logging
from functools import cache
from typing import Any, cast

import mode.loop
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import REGISTRY

from orderstream.contracts.events import Event, encode
from orderstream.contracts.topics import registry, route
from orderstream.faust_ext import check_faust_version, write_back
from orderstream.faust_ext.app import App
from orderstream.faust_ext.logging import quiet_root_logger
from orderstream.faust_ext.monitor import FastPrometheusMonitor
from orderstream.faust_ext.stream import stream_class
from orderstream.faust_ext.tables import TableManager
from orderstream.faust_ext.transport import broker_urls
from orderstream.faust_ext.write_back import Table as WriteBackTable
from orderstream.faust_ext.write_through import Table as WriteThroughTable
from orderstream.kafka.auth import broker_credentials
from orderstream.kafka.partitioner import partition_for
from orderstream.observability import metrics, tracing
from orderstream.settings import Settings, get_settings
from orderstream.worker import chaos, memory

log = logging.getLogger(__name__)
settings = get_settings()
check_faust_version()
if settings.event_loop != "aio":
    mode.loop.use(settings.event_loop)  # before Faust makes its loop: uvloop is ~2x faster I/O

app = App(  # Faust's (orderstream/faust_ext/app.py)
    settings.app_id,
    broker=broker_urls(settings.broker),  # our transport (orderstream/faust_ext): same Kafka URLs
    TableManager=TableManager,
    # orderstream/faust_ext/write_back.py: changelog and RocksDB once per commit (exactly_once
    # mode); write_through.py: each write's changelog record without Faust's future message.
    Table=WriteBackTable if settings.write_back else WriteThroughTable,
    Stream=stream_class(settings.stream_yield_every),  # orderstream/faust_ext/stream.py
    broker_credentials=broker_credentials(settings),  # SASL / TLS from ORDERSTREAM_KAFKA_*
    store=settings.store,
    datadir=str(settings.datadir),
    # origin: this package, scanned whole (agents, tables, timers); and the HTTP views.
    autodiscover=["orderstream.web"],
    origin="orderstream.worker",
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    table_standby_replicas=settings.table_standby_replicas,
    consumer_auto_offset_reset="earliest",
    web="orderstream://",  # orderstream/web/server.py: JSON errors, our page at /
    web_bind=settings.web_host,
    web_host=settings.web_advertised_host or settings.web_host,
    web_port=settings.web_port,
    web_router_enabled=settings.web_builtin_views,
    web_tables_enabled=settings.web_builtin_views,
    producer_partitioner=partition_for,  # Kafka's default, with key hashes remembered
    web_enabled=True,
    **settings.faust_flow(),
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 4),
)
# GET /metrics: Faust's sensors as faust_* (a fixed prefix, whatever the app id) and ours.
setup_prometheus_sensors(app, pattern="/metrics", registry=REGISTRY, name_prefix="faust")
app.monitor = FastPrometheusMonitor(metrics=cast(Any, app.monitor)._metrics)  # same metrics
tracing.configure(settings, instance=f"{app.conf.web_host}:{settings.web_port}")


@cache
def topic(*roles: str, maxsize: int | None = None) -> Any:
    """The Faust channel for one or more registry topics (raw bytes: we decode and validate);
    `maxsize`: records fetched ahead into its queue (default: the app's stream_buffer_maxsize)."""
    specs = [registry(settings)[r] for r in roles]
    channel = app.topic(
        *[s.name for s in specs],
        key_serializer="raw",
        value_serializer="raw",
        partitions=specs[0].partitions,
        replicas=specs[0].replication_factor,
        config=specs[0].configs,
    )
    channel.maxsize = maxsize  # faust-streaming 0.15.3's app.topic() drops its `maxsize`
    return channel


async def publish(event: Event, headers: dict[str, bytes] | None = None) -> asyncio.Future[Any]:
    """Send an event to its topic, keyed by the registry's route (buffered, not awaited), with
    `headers` and the trace context; returns its delivery."""
    role, key = route(event)
    name, value = topic_name(role), encode(event)
    order_id = getattr(event.data, "orderId", None)
    with tracing.producing(event.eventType, name, order_id) as trace:
        sent = {**headers, **trace} if headers else trace
        delivery = await send(name, key.encode(), value, sent)
        if settings.chaos_duplicate_sends:
            await send(name, key.encode(), value, sent)
    return delivery


async def relay(role: str, key: str, event: Event, raw: bytes, headers: dict[str, bytes]) -> None:
    """Forward a consumed event's bytes unchanged to another registry topic under another key
    (a repartition), with `headers` and the trace context."""
    name = topic_name(role)
    order_id = getattr(event.data, "orderId", None)
    with tracing.producing(event.eventType, name, order_id) as trace:
        await send(name, key.encode(), raw, {**headers, **trace})
        if settings.chaos_duplicate_sends:
            await send(name, key.encode(), raw, {**headers, **trace})


@cache
def topic_name(role: str) -> str:
    return str(registry(settings)[role].name)


async def send(
    name: str, key: bytes, value: bytes, headers: dict[str, bytes] | None
) -> asyncio.Future[Any]:
    """Hand one record to the Kafka producer, without waiting for the broker: the flush before
    each offset commit waits for it, and a failed delivery stops the commits
    (orderstream/faust_ext/producer.py). Straight to Faust's producer, not through a Faust topic
    (its per-send futures, callbacks and sensors cost more than the send itself). Returns the
    record's delivery, for the callers that must know it arrived (POST /orders)."""
    if app.in_transaction:  # exactly_once: into the transaction of the record being processed
        transactions = cast(Any, app.consumer.transactions)
        return await transactions.send_event(name, key, value, headers or None)  # type: ignore[no-any-return]
    delivery = await app.producer.send(name, key, value, None, None, headers or None)
    return cast("asyncio.Future[Any]", delivery)


def _send_failed(topic: str, error: BaseException) -> None:
    log.error("record to %s not delivered: %r", topic, error)
    metrics.send_failed(topic)


def raw_table(name: str, help: str, *, replayable: bool = False, flush_first: bool = False) -> Any:
    """A changelog-backed RocksDB table of bytes -> bytes; we (de)serialize with the models.

    `replayable`: the table writes back once per commit (orderstream/faust_ext/write_back.py)
    at least once too. A crash there loses the values of records not committed yet, which are
    processed again against the state of the last flush; that is safe where processing them
    again decides what it decided the first time: a read model decides no event, and the stock
    changes only by the records of one input partition (its command log), in their order, by
    rules that depend on nothing else. The saga's state decides events from several input
    topics, whose interleaving a replay does not repeat: it writes back in exactly-once mode
    only (settings.table_write_back).

    `flush_first`: a write-back table's values of a flush are acknowledged before the other
    tables' are sent (orderstream/faust_ext/write_back.py `Table.flush_first`)."""
    # bytes as key and value type make Faust use the raw codec for the store and the changelog.
    options: dict[str, Any] = {
        "partitions": settings.partitions,
        "key_type": bytes,
        "value_type": bytes,
        "help": help,
        "options": rocksdb_options(settings),
    }
    if replayable and settings.write_back_replayable:
        table = app.tables.add(WriteBackTable(app, name=name, beacon=app.tables.beacon, **options))
    else:
        table = app.Table(name, **options)
    if isinstance(table, WriteBackTable):
        table.flush_first = flush_first
    return table


def rocksdb_options(s: Settings) -> dict[str, int]:
    """Memory of each RocksDB database (one per table and partition: 28 per worker by default).
    Faust's defaults (64 MB write buffers, three of them, and a 2 GB block cache each) let a
    worker's memory grow with the data it writes; these bound it."""
    mb = 1024 * 1024
    return {
        "write_buffer_size": s.rocksdb_write_buffer_mb * mb,
        "max_write_buffer_number": 3,
        "block_cache_size": s.rocksdb_block_cache_mb * mb,
    }


def enabled_agents(available: list[str], wanted: str) -> list[str]:
    """The agents a worker runs: all of them, or those named in `wanted` (comma-separated)."""
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise SystemExit(f"ORDERSTREAM_AGENTS: unknown agents {unknown}; pick from {available}")
    return names or list(available)


@app.on_worker_init.connect  # type: ignore[arg-type]
def _set_the_collector(sender: Any, **_: Any) -> None:
    """The garbage collector of a worker process (orderstream/worker/memory.py); a process that
    only imports the app (the tests, the CLI) keeps Python's."""
    memory.configure(settings)


@app.on_worker_init.connect  # type: ignore[arg-type]
def _select_agents(sender: Any, **_: Any) -> None:
    """Drop the agents this worker does not run (after autodiscover, before the agents start:
    an agent never started never subscribes to its topics)."""
    keep = enabled_agents(list(app.agents), settings.agents)
    if settings.payment_mode == "inline":  # the saga charges in its own step
        keep = [n for n in keep if n != "payment"]
    for name in [n for n in app.agents if n not in keep]:
        del app.agents[name]


if settings.chaos_crash_in_flush is not None:
    write_back.on_partition_written = chaos.in_flush


@app.task  # type: ignore[untyped-decorator]
async def _quiet_debug_logging() -> None:
    """Once the worker logs: no debug records built on the hot path, the producer buffer bounded,
    failed deliveries logged and counted."""
    quiet_root_logger()
    app.producer.buffer.max_messages = settings.producer_buffer_max
    cast(Any, app.producer).on_failed_send = _send_failed
    if app.in_transaction:
        cast(Any, app.producer).on_fenced = _task_fenced


@app.task  # type: ignore[untyped-decorator]
async def _freeze_startup_objects() -> None:
    """What the worker made to start, its tables' first recovery included, lives as long as it:
    out of later collections (orderstream/worker/memory.py)."""
    if settings.gc_freeze_at_start:
        await cast(Any, app.tables).recovery.completed.wait()
        memory.freeze()


def _task_fenced(tid: str, error: BaseException) -> None:
    transactions = cast(Any, app.consumer.transactions)
    task = asyncio.ensure_future(transactions.fenced(tid, error))
    _fences.add(task)
    task.add_done_callback(_fences.discard)


_fences: set[asyncio.Future[Any]] = set()  # kept until done (the loop holds tasks weakly)

"""The Faust application. It imports no agents: autodiscover finds them (agents import it)."""

from __future__ import annotations

from functools import cache
from typing import Any

import faust

from app.events import Event, encode
from app.settings import get_settings
from app.topics import registry, route

settings = get_settings()

app = faust.App(
    settings.app_id,
    broker=settings.broker,
    store="rocksdb://",  # rocksdict driver
    datadir=str(settings.datadir),
    autodiscover=["agents", "tables", "app.web"],
    origin="app",
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    table_standby_replicas=settings.table_standby_replicas,
    consumer_auto_offset_reset="earliest",
    web_bind=settings.web_host,
    web_host=settings.web_host,
    web_port=settings.web_port,
    producer_acks=-1,
    producer_linger_ms=5,
    broker_commit_every=1000,
    broker_commit_interval=1.0,
    stream_buffer_maxsize=4096,
    web_enabled=True,
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 4),
)


@cache
def topic(*roles: str) -> Any:
    """The Faust channel for one or more registry topics (raw bytes: we decode and validate)."""
    specs = [registry(settings)[r] for r in roles]
    return app.topic(
        *[s.name for s in specs],
        key_serializer="raw",
        value_serializer="raw",
        partitions=specs[0].partitions,
        replicas=specs[0].replication_factor,
        config=specs[0].configs,
    )


async def publish(event: Event) -> None:
    """Send an event to its topic, keyed by the registry's route (buffered, not awaited)."""
    role, key = route(event)
    channel, value = topic(role), encode(event)
    await channel.send(key=key.encode(), value=value)
    if settings.chaos_duplicate_sends:
        await channel.send(key=key.encode(), value=value)


def raw_table(name: str, help: str) -> Any:
    """A changelog-backed RocksDB table of bytes -> bytes; we (de)serialize with the models."""
    # bytes as key and value type make Faust use the raw codec for the store and the changelog.
    return app.Table(name, partitions=settings.partitions, key_type=bytes, value_type=bytes,
                     help=help)

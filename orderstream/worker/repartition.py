"""Every record is applied on the partition its entity's key belongs to.

Producers we did not write place records their own way: librdkafka's default partitioner
(CRC32), round-robin, no key, or a key that is not the entity's id. A record away from the
partition Kafka's default partitioner (murmur2) gives its entity's key would be applied by
whichever worker owns that partition, apart from the rest of its entity's state (an order's
replies come back on the murmur2 partition). Such a record is re-published, unchanged, to its
topic under its entity's key before any state is read or written, and applied when it comes
back on the right partition.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from orderstream.contracts.events import Event
from orderstream.contracts.topics import TopicSpec
from orderstream.kafka.partitioner import entity_key, home_of, misplaced
from orderstream.observability import metrics

log = logging.getLogger(__name__)


@cache
def _specs_by_name() -> dict[str, TopicSpec]:
    from orderstream.contracts.topics import registry
    from orderstream.worker.app import settings

    return {spec.name: spec for spec in registry(settings).values()}


def home_partition(topic: str, key: str) -> int | None:
    """The partition of a registry topic (by name) that Kafka's default partitioner gives `key`
    (None: not a registry topic, as in agent tests)."""
    spec = _specs_by_name().get(topic)
    return None if spec is None else home_of(spec, key.encode())


def _home_key(event: Any, decoded: Event) -> bytes | None:
    """The entity's key when the record is away from it, or from that key's partition."""
    spec = _specs_by_name().get(event.message.topic)
    if spec is None:
        return None
    key = entity_key(spec, decoded)
    return key if key is not None and misplaced(event.message, spec, key) else None


def away_from_home(event: Any, decoded: Event) -> bool:
    """Whether the record is away from its entity's key, or from that key's partition."""
    return _home_key(event, decoded) is not None


async def rehomed(event: Any, decoded: Event) -> bool:
    """True when the record was away from its entity's partition: it was re-published there
    (the caller applies nothing now; the copy is applied when it comes in)."""
    key = _home_key(event, decoded)
    if key is None:
        return False
    from orderstream.worker.app import send

    message = event.message
    spec = _specs_by_name()[message.topic]
    headers = dict(event.headers or {})
    await send(message.topic, key, event.value, headers)
    metrics.record_repartitioned(message.topic)
    log.info(
        "%s/%d@%d: %s keyed %r belongs to partition %d (key %r): re-published there",
        message.topic,
        message.partition,
        message.offset,
        decoded.eventType,
        message.key,
        home_of(spec, key),
        key,
    )
    return True

"""Kafka's default partitioner (murmur2 of the key, as the Java client and aiokafka compute it),
with the hashes of recent keys remembered: a worker sends the same keys again and again (a
product for each order line, a customer, the ~8 records of one order). The hash of a new key (an
order id's first record) is computed by the `murmurhash2` package (compiled, 0.2 us): aiokafka's,
in Python, cost ~6 us, 4% of the inventory stage's CPU.

And where a record of a registry topic belongs: under its entity's key (`entity_key`), on that
key's partition (`misplaced`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aiokafka.partitioner import DefaultPartitioner
from murmurhash2 import murmurhash2 as _murmurhash2

if TYPE_CHECKING:
    from orderstream.contracts.events import Event
    from orderstream.contracts.topics import TopicSpec

_default = DefaultPartitioner()
_SEED = 0x9747B28C  # Kafka's (org.apache.kafka.common.utils.Utils.murmur2)


def murmur2(key: bytes) -> int:
    """Kafka's murmur2 of the key, as an unsigned 32-bit int."""
    return int(_murmurhash2(key, _SEED))


@lru_cache(maxsize=16384)
def key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def partition_for(key: bytes | None, all_partitions: Sequence[int], available: list[int]) -> int:
    """The partition Kafka's default partitioner picks (a record without key: a random one)."""
    if key is None:
        return int(_default(key, all_partitions, available))
    return all_partitions[key_hash(key) % len(all_partitions)]


def entity_key(spec: TopicSpec, event: Event) -> bytes | None:
    """The key a record of this topic must have: its entity's id (None: no such field)."""
    value = getattr(event.data, spec.key, None)
    return None if value is None else str(value).encode()


def home_of(spec: TopicSpec, key: bytes) -> int:
    """The partition of the topic that Kafka's default partitioner gives `key`."""
    return key_hash(key) % spec.partitions


def misplaced(message: Any, spec: TopicSpec, key: bytes) -> bool:
    """Whether a record is away from its entity's key, or from that key's partition (the worker
    re-publishes it: orderstream/worker/repartition.py; the replay skips it)."""
    return bool(message.key != key or home_of(spec, key) != message.partition)

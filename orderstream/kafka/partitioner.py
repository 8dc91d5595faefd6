"""Kafka's default partitioner (murmur2 of the key, as the Java client and aiokafka compute it),
with the hashes of recent keys remembered: aiokafka's murmur2 is pure Python (~15 us a record),
and a worker sends the same keys again and again (a product for each order line, a customer,
the ~8 records of one order)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from aiokafka.partitioner import DefaultPartitioner, murmur2

_default = DefaultPartitioner()


@lru_cache(maxsize=16384)
def key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(key: bytes | None, all_partitions: Sequence[int], available: list[int]) -> int:
    """The partition Kafka's default partitioner picks (a record without key: a random one)."""
    if key is None:
        return int(_default(key, all_partitions, available))
    return all_partitions[key_hash(key) % len(all_partitions)]

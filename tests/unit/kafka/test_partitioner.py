"""The partitioner picks the partition Kafka's default partitioner picks, for every key: the
order service (any Kafka client) and the workers must agree on where a key lives."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from orderstream.kafka.partitioner import key_hash, murmur2, partition_for


def test_it_agrees_with_the_default_partitioner_for_new_and_repeated_keys() -> None:
    rng = random.Random(3)
    keys = [rng.randbytes(rng.randint(1, 40)) for _ in range(2000)] + [b"SKU-0001", b"C0042"]
    default = DefaultPartitioner()
    for n in (1, 4, 12):
        partitions = list(range(n))
        for key in keys + keys:  # the second time from the remembered hash
            assert partition_for(key, partitions, partitions) == default(
                key, partitions, partitions
            )
    assert key_hash.cache_info().hits >= len(keys)


def test_known_keys_land_where_the_java_client_puts_them() -> None:
    # Kafka's UtilsTest.testMurmur2 values; the Java client picks toPositive(murmur2) % n
    for key, java_murmur2 in ((b"21", -973932308), (b"foobar", -790332482), (b"abc", 479470107)):
        partitions = list(range(7))
        assert partition_for(key, partitions, partitions) == (java_murmur2 & 0x7FFFFFFF) % 7


def test_the_hash_is_aiokafkas_for_every_length_and_byte() -> None:
    rng = random.Random(7)
    keys = [rng.randbytes(n) for n in range(80) for _ in range(20)]
    keys += [b"", b"\xff" * 9, b"\x80\x00\x00\x80" * 3, "päß-🛒".encode()]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key) & 0xFFFFFFFF, key


def test_a_record_without_key_goes_to_an_available_partition() -> None:
    assert partition_for(None, [0, 1, 2, 3], [2]) == 2

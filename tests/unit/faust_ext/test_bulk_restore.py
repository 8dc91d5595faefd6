"""Which changelog partitions the bulk restore reads, and from where
(orderstream/faust_ext/bulk_restore.py)."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from faust.types import TP

from orderstream.faust_ext.bulk_restore import Span, behind, spans_behind

A, B, C = TP("t", 0), TP("t", 1), TP("t", 2)


def test_a_partition_far_enough_behind_is_read_from_the_next_offset_to_the_highwater() -> None:
    # Faust's offsets are the last applied (-1 or None: nothing yet); highwaters the last offset
    spans = spans_behind([A, B, C], {A: None, B: 499, C: 900}, {A: 999, B: 999, C: 999}, 500)
    assert spans == {TopicPartition("t", 0): Span(0, 1000), TopicPartition("t", 1): Span(500, 1000)}


def test_nothing_is_read_when_off_or_when_the_changelog_is_empty() -> None:
    assert spans_behind([A], {A: -1}, {A: 999}, 0) == {}
    assert spans_behind([A, B], {A: -1, B: None}, {A: -1, B: None}, 1) == {}


def test_the_spans_are_keyed_like_faust_keys_its_offsets() -> None:
    (tp,) = spans_behind([A], {A: -1}, {A: 10}, 1)
    assert tp == A and hash(tp) == hash(A)  # so offsets[tp] = ... updates Faust's entry


def test_records_behind_from_the_start_or_from_where_the_reading_got() -> None:
    spans = {TopicPartition("t", 0): Span(0, 1000), TopicPartition("t", 1): Span(500, 1000)}
    assert behind(spans) == 1500
    assert behind(spans, {TopicPartition("t", 0): 1000, TopicPartition("t", 1): 700}) == 300


def test_tables_not_in_rocksdb_are_left_to_faust() -> None:
    from types import SimpleNamespace

    from orderstream.faust_ext.bulk_restore import catch_up
    from orderstream.settings import Settings

    memory_table = SimpleNamespace(data=SimpleNamespace())  # memory:// store: no RocksDB offsets
    recovery = SimpleNamespace(active_highwaters={A: 999}, tp_to_table={A: memory_table})
    offsets = {A: -1}
    assert asyncio.run(catch_up(recovery, Settings(), [A], offsets)) == 0
    assert offsets == {A: -1}

"""Which changelog partitions the bulk restore reads, from where, and which fetched records it
hands over (orderstream/faust_ext/bulk_restore.py)."""

from __future__ import annotations

import asyncio
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    CorruptRecordException,
    NotLeaderForPartitionError,
    OffsetOutOfRangeError,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.types import TP

from orderstream.faust_ext import bulk_restore
from orderstream.faust_ext.bulk_restore import Span, behind, read_spans, spans_behind, unpack

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
    from orderstream.faust_ext.bulk_restore import catch_up
    from orderstream.settings import Settings

    memory_table = SimpleNamespace(data=SimpleNamespace())  # memory:// store: no RocksDB offsets
    recovery = SimpleNamespace(active_highwaters={A: 999}, tp_to_table={A: memory_table})
    offsets = {A: -1}
    assert asyncio.run(catch_up(recovery, Settings(), [A], offsets)) == 0
    assert offsets == {A: -1}


def _batch(base: int, count: int) -> bytes:
    """A record batch (Kafka's format v2) of `count` records from offset `base`, keys k<offset>."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i in range(count):
        builder.append(i, timestamp=None, key=b"k%d" % (base + i), value=b"v", headers=[])
    data = builder.build()
    struct.pack_into(">q", data, 0, base)  # the base offset is outside the CRC
    return bytes(data)


def test_unpack_hands_over_the_offsets_of_its_span_and_where_to_go_on() -> None:
    data = _batch(0, 3) + _batch(3, 3)
    fetched = unpack(data, start=1, end=5)
    assert [r.offset for r in fetched.records] == [1, 2, 3, 4]
    assert [r.key for r in fetched.records] == [b"k1", b"k2", b"k3", b"k4"]
    assert fetched.next_offset == 5


def test_unpack_goes_on_past_a_compacted_gap_and_stops_at_a_cut_off_batch() -> None:
    whole = _batch(0, 3) + _batch(10, 3)
    fetched = unpack(whole, start=0, end=100)
    assert [r.offset for r in fetched.records] == [0, 1, 2, 10, 11, 12]
    assert fetched.next_offset == 13
    cut = unpack(whole[:-5], start=0, end=100)  # the response's size limit cut the last batch
    assert [r.offset for r in cut.records] == [0, 1, 2]
    assert cut.next_offset == 3


def test_unpack_refuses_a_corrupt_batch() -> None:
    data = bytearray(_batch(0, 3))
    data[-1] ^= 0xFF
    with pytest.raises(CorruptRecordException):
        unpack(bytes(data), start=0, end=3)


class FakeBroker:
    """The client as `read_spans` uses it: node `leader` leads every partition and answers a
    fetch with every batch of `logs` that ends past the offset asked for, after answering the
    first fetches of a partition with the error codes of `errors`."""

    def __init__(
        self,
        logs: dict[TopicPartition, list[tuple[int, int]]],
        leader: int = 0,
        errors: dict[TopicPartition, list[int]] | None = None,
    ) -> None:
        self.logs = logs  # tp -> batches as (base offset, records)
        self.leader = leader
        self.errors = errors or {}
        self.cluster = SimpleNamespace(leader_for_partition=lambda tp: self.leader)
        self.fetches: list[tuple[int, list[tuple[str, list[tuple[int, int, int]]]]]] = []
        self.refreshes = 0

    async def set_topics(self, topics: list[str]) -> None:
        return None

    def force_metadata_update(self) -> None:
        self.refreshes += 1

    async def send(self, node: int, request: Any) -> Any:
        self.fetches.append((node, request.topics))
        topics = []
        for topic, partitions in request.topics:
            answers = []
            for partition, offset, _ in partitions:
                tp = TopicPartition(topic, partition)
                batches = self.logs[tp]
                end = batches[-1][0] + batches[-1][1]
                errors = self.errors.get(tp, [])
                code = errors.pop(0) if errors else 0
                data = (
                    b"".join(_batch(b, n) for b, n in batches if b + n > offset)
                    if not code
                    else b""
                )
                # v7: lso, log start offset, aborted transactions, records
                answers.append((partition, code, end, end, 0, None, data))
            topics.append((topic, answers))
        return SimpleNamespace(API_VERSION=7, topics=topics)


def _read(broker: FakeBroker, spans: dict[TopicPartition, Span]) -> tuple[dict, list[tuple]]:
    applied: list[tuple[TopicPartition, int]] = []
    turns = iter(range(50))  # a bound, not a timer: a reader that cannot go on stops

    def apply(tp: TopicPartition, records: Any) -> None:
        applied.extend((tp, r.offset) for r in records)

    reached = asyncio.run(
        read_spans(broker, spans, apply, lambda: next(turns, None) is not None)  # type: ignore[arg-type]
    )
    return reached, applied


P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


def test_read_spans_reads_from_a_leader_whose_node_id_is_0(monkeypatch: Any) -> None:
    monkeypatch.setattr(bulk_restore, "RETRY_BACKOFF_S", 0)
    broker = FakeBroker({P0: [(0, 3), (3, 3)]}, leader=0)
    reached, applied = _read(broker, {P0: Span(0, 6)})
    assert reached == {P0: 6}
    assert applied == [(P0, o) for o in range(6)]
    assert {node for node, _ in broker.fetches} == {0}


def test_read_spans_retries_a_retriable_error_and_leaves_a_fatal_one_to_faust(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(bulk_restore, "RETRY_BACKOFF_S", 0)
    not_leader = NotLeaderForPartitionError.errno
    out_of_range = OffsetOutOfRangeError.errno
    broker = FakeBroker(
        {P0: [(0, 4)], P1: [(0, 4)]}, leader=1, errors={P0: [not_leader], P1: [out_of_range]}
    )
    reached, applied = _read(broker, {P0: Span(0, 4), P1: Span(0, 4)})
    assert reached == {P0: 4, P1: 0}  # P1 from 0 on: Faust's own path
    assert applied == [(P0, o) for o in range(4)]
    assert broker.refreshes == 1

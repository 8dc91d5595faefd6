"""The producer's records get their futures from the loop, not from a look-up of the running loop
per record (which costs a getpid system call), and each future still resolves to its record's
offset."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import util
from aiokafka.producer.message_accumulator import MessageAccumulator
from aiokafka.structs import TopicPartition

from orderstream.faust_ext.producer import LoopBatch, LoopFutures


async def test_a_batch_of_records_looks_the_loop_up_once_and_resolves_each_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked_up = 0
    look_up = util.get_running_loop

    def counting() -> Any:
        nonlocal looked_up
        looked_up += 1
        return look_up()

    monkeypatch.setattr(util, "get_running_loop", counting)
    acc = MessageAccumulator(None, 1 << 20, 0, 30.0)
    acc.__class__ = LoopFutures  # as Producer._new_producer does
    tp = TopicPartition("t", 0)
    futures = [await acc.add_message(tp, b"k", b"v%d" % n, 1.0, 1000 + n) for n in range(100)]
    batches = acc._batches[tp]
    assert len(batches) == 1 and type(batches[0]) is LoopBatch
    assert looked_up <= 2  # the batch's own two futures: none per record
    batches[0].done(base_offset=10)
    assert [f.result().offset for f in futures] == list(range(10, 110))

"""Minimal reproductions of the faust-streaming 0.15.3 behaviours orderstream/faust_ext works around
(docs/faust-fixes.md). Each asserts the behaviour as it is today, with Faust's own classes and
no broker: when one fails, Faust changed there, and our class for it may be dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import faust
import pytest
from faust.types import TP

T0 = TP("orders", 0)


@pytest.fixture
def app() -> faust.App:
    return faust.App("faust-bug-repro", broker="kafka://127.0.0.1:1", store="memory://")


def test_app_topic_drops_its_maxsize(app: faust.App) -> None:
    """faust-fixes.md 1: app.topic(maxsize=N) builds a channel whose queue is the app's
    stream_buffer_maxsize, not N."""
    channel = app.topic("orders", maxsize=7)
    assert channel.maxsize != 7


async def test_a_jump_between_offsets_is_committed_over(app: faust.App) -> None:
    """faust-fixes.md 2: records 1 and 2 were fetched but never delivered (a delivery abandoned
    in a rebalance); the fetch loop takes the jump from 0 to 3 for a gap and acks it, so the
    commit moves past records nobody processed."""
    consumer = cast(Any, app.consumer)
    consumer._committed_offset[T0] = 0
    for offset in (0, 3):  # Consumer.ack's bookkeeping for the two records processed
        consumer._acked[T0].append(offset)
        consumer._acked_index[T0].add(offset)
    await consumer._add_gap(T0, 1, 2)  # what _drain_messages does for the jump 0 -> 3
    assert consumer._new_offset(T0) == 4


async def test_the_fetch_drops_the_rest_of_a_batch_when_the_flow_stops(app: faust.App) -> None:
    """faust-fixes.md 11: a rebalance stops the flow after the first record of a batch of
    three; Faust's getmany drops the other two (the client's position is past them already)
    and seeks nothing back to them."""
    from aiokafka.structs import ConsumerRecord

    consumer = cast(Any, app.consumer)
    batch = {
        T0: [ConsumerRecord("orders", 0, o, 0, 0, b"k", b"v", None, 1, 1, ()) for o in (0, 1, 2)]
    }

    async def next_records(timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109
        return batch, {T0}

    consumer._wait_next_records = next_records
    consumer.highwater = lambda tp: 3
    consumer.flow_active = True
    handed = []
    async for _, message in consumer.getmany(timeout=0):
        handed.append(message.offset)
        consumer.flow_active = False  # a rebalance begins
    assert handed == [0]  # 1 and 2: gone, no seek, no trace


async def test_the_producer_buffer_flush_returns_before_a_slow_send_is_done(
    app: faust.App,
) -> None:
    """faust-fixes.md 3: the flush before a commit gives up after 0.1 s without a record
    leaving the buffer, while the record being sent is still on its way: the commit then covers
    a table write that is not in the changelog yet."""
    buffer = app.producer.buffer
    sent: list[str] = []

    class SlowChannel:
        async def publish_message(self, fut: Any, wait: bool = False) -> None:
            await asyncio.sleep(0.5)
            sent.append("done")

    await buffer.start()
    try:
        fake = type("Fut", (), {"message": type("M", (), {"channel": SlowChannel()})()})()
        buffer.put(cast(Any, fake))
        await asyncio.sleep(0)  # the buffer's task takes it and starts sending
        await buffer.flush()
        assert sent == []  # flush returned with the send still under way
    finally:
        await buffer.stop()


def test_the_compiled_stream_loop_acks_past_consumer_ack() -> None:
    """faust-fixes.md 4: the Cython stream iterator marks a record done by writing into the
    consumer's offset lists itself instead of calling Consumer.ack, so a Consumer subclass (the
    transport's extension point) never hears of it."""
    from faust._cython import streams

    source = Path(streams.__file__).with_name("streams.pyx").read_text()
    after = source[source.index("cpdef object after") :]
    after = after[: after.index("cdef object _prepare_event")]
    assert "consumer._acked[tp]" in after and "consumer.ack(" not in after

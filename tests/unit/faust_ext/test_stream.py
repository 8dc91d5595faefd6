"""Our stream's loop (orderstream/faust_ext/stream.py): Faust's Python loop, with a turn of the
event loop every `yield_every` records taken from a non-empty queue instead of one per record."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest

from orderstream.faust_ext.stream import Stream, stream_class
from orderstream.faust_ext.write_through import Table
from tests.unit.faust_ext.conftest import offline_app


async def _run(
    yield_every: int, records: int, *, by_event: bool = False
) -> tuple[list[Any], list[int], list[Any]]:
    """Queue `records` events on a channel, then iterate them with our stream (`by_event`: its
    `events()`, as the agents do) while another task counts the event loop's turns; return the
    values, the turns seen at each value, the events."""
    app = offline_app(f"stream-test-{yield_every}", Table, Stream=stream_class(yield_every))
    app.flow_control.resume()  # as a started worker's is
    channel = app.channel()
    stream = app.stream(channel)  # its own queue, fed by the channel's sends
    assert isinstance(stream, Stream)
    for n in range(records):
        await channel.send(value=n)
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    tick = asyncio.ensure_future(ticker())
    values: list[Any] = []
    seen: list[int] = []
    events: list[Any] = []
    try:
        async for item in stream.events() if by_event else stream:
            values.append(item.value if by_event else item)
            seen.append(turns)
            events.append(item if by_event else stream.current_event)
            assert events[-1] is stream.current_event
            if len(values) == records:
                break
    finally:
        tick.cancel()
    return values, seen, events


@pytest.mark.parametrize("by_event", [False, True], ids=["values", "events"])
@pytest.mark.parametrize("yield_every", [32, 8, 1])
async def test_the_event_loop_runs_once_every_yield_every_records_taken(
    yield_every: int, by_event: bool
) -> None:
    values, seen, _ = await _run(yield_every, 100, by_event=by_event)
    assert values == list(range(100))  # each once, in order
    # the other task ran only at the turns the stream gave it, one before every
    # `yield_every`-th record (1: Faust's loop, a turn before each)
    assert seen == [(i + 1) // yield_every for i in range(100)]


@pytest.mark.parametrize("by_event", [False, True], ids=["values", "events"])
async def test_each_event_is_acked_once_when_the_next_is_taken(by_event: bool) -> None:
    _, _, events = await _run(32, 40, by_event=by_event)
    # the loop acks a record once the agent asks for the next one (the last: not yet)
    assert [e.message.acked for e in events[:-1]] == [True] * 39
    assert events[-1].message.acked is False
    assert all(e.message.refcount == 0 for e in events[:-1])


async def test_events_is_the_loop_itself_not_a_generator_over_it() -> None:
    app = offline_app("stream-test-events", Table, Stream=stream_class(32))
    stream = app.stream(app.channel())

    events = stream.events()

    assert events.ag_code is Stream._lean_aiter.__code__  # type: ignore[attr-defined]
    await events.aclose()  # type: ignore[attr-defined]


def test_a_stream_of_a_plain_iterable_is_fausts() -> None:
    app = offline_app("stream-test-iterable", Table, Stream=stream_class(32))
    stream = app.stream([1, 2, 3])

    async def collect() -> list[int]:
        return [v async for v in stream]

    assert isinstance(stream, faust.Stream)
    assert asyncio.run(collect()) == [1, 2, 3]


async def test_records_of_an_earlier_generation_are_acked_not_handed_over() -> None:
    """Records fetched before a rebalance (another consumer generation) are dropped and acked,
    as Faust's loop does: the new owner of their partition handles them."""
    app = offline_app("stream-test-generation", Table, Stream=stream_class(4))
    app.flow_control.resume()
    channel = app.channel()
    stream = app.stream(channel)
    for n in range(10):
        await channel.send(value=n)
    old = [stream.channel.queue.get_nowait() for _ in range(10)]
    for event in old:  # back into the queue, as fetched
        stream.channel.queue.put_nowait(event)
    app.consumer_generation_id += 1  # a rebalance
    for n in range(10, 13):
        await channel.send(value=n)
    values = []
    async for value in stream:
        values.append(value)
        if len(values) == 3:
            break
    assert values == [10, 11, 12]
    assert all(e.message.acked for e in old)

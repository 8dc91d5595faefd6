"""Faust's stream, iterated by a Python loop that takes what is queued without a turn of the
event loop per record.

Faust's compiled stream loop (faust/_cython/streams.pyx `after`) acks a record by writing into
the consumer's offset lists itself, past `Consumer.ack`: a record it acks would never reach the
record ledger (orderstream/faust_ext/ledger.py), and nothing would ever be committed. Its Python
loop (`Stream._py_aiter`) acks through `Event.ack` -> `Consumer.ack`, the one place the ledger
hears of it, but it runs `await asyncio.sleep(0)` before every record: a whole turn of the event
loop (ready callbacks, a poll of the selector) per record, for every agent, with records queued.

`_lean_aiter` is `_py_aiter` (same checks, sensors, acks, in the same order) except that it lets
the event loop run only every `yield_every` records taken from a non-empty queue (the consumer
thread's hand-overs, the producer's callbacks and the other agents wait at most that many
records), or whenever its queue is empty (it waits for the next record then). `yield_every=1` is
Faust's loop: a turn before every record. `events()`, what the agents iterate, is that loop
yielding events, not Faust's generator over it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from faust.exceptions import Skip
from faust.streams import _current_event
from faust.types import ChannelT, EventT


class Stream(faust.Stream[Any]):
    #: records taken from a non-empty queue between two turns of the event loop
    #: (`stream_class` sets it from settings.stream_yield_every)
    yield_every = 32

    def __aiter__(self) -> AsyncIterator[Any]:
        # an iterable (app.stream([...])) gets Faust's loop
        it = self._lean_aiter() if isinstance(self.channel, ChannelT) else self._py_aiter()
        self._active_agens.add(cast(Any, it))
        return it

    def events(self) -> AsyncIterator[Any]:
        """The stream's events, what every agent iterates. Faust's `events()` is an async
        generator over `self` that yields each `current_event`: a second generator to resume
        per record. Ours is the loop itself, yielding the event (the same one, acked at the
        same point: when the agent asks for the next)."""
        if not isinstance(self.channel, ChannelT):
            return super().events()  # type: ignore[return-value]
        it = self._lean_aiter(events=True)
        self._active_agens.add(cast(Any, it))
        return it

    async def _lean_aiter(self, events: bool = False) -> AsyncIterator[Any]:
        """`_py_aiter`, taking up to `yield_every` queued records per turn of the event loop;
        `events`: yield each record's event (`events()`), not its value."""
        self._finalized = True
        yield_every = self.yield_every
        started_by_aiter = await self.maybe_start()
        on_stream_event_out = self._on_stream_event_out
        on_message_out = self._on_message_out
        channel = self.channel
        chan_queue = channel.queue  # type: ignore[attr-defined]  # agents stream from channels
        chan_queue_empty = chan_queue.empty
        chan_errors = chan_queue._errors
        chan_quick_get = chan_queue.get_nowait
        chan_slow_get = channel.__anext__
        processors = self._processors
        on_stream_event_in = self._on_stream_event_in
        create_ref = weakref.ref
        app = self.app
        flow_control = app.flow_control
        add_unacked = app.consumer.unacked.add
        acking_topics = app.topics.acking_topics
        on_message_in = self._on_message_in
        sleep = asyncio.sleep
        skipped_value = self._skipped_value
        sensor_state: Any = None
        taken = 0  # records taken from a non-empty queue since the event loop last ran

        try:
            while not self.should_stop:
                event: Any = None
                do_ack = self.enable_acks
                value: Any = None
                while value is None and event is None:
                    if not chan_queue_empty():
                        taken += 1
                        if taken >= yield_every:
                            taken = 0
                            await sleep(0)  # the queue may be emptied meanwhile (a rebalance)
                    if chan_errors:
                        raise chan_errors.popleft()
                    if chan_queue_empty():
                        taken = 0
                        channel_value = await chan_slow_get()  # the event loop runs meanwhile
                    else:
                        channel_value = chan_quick_get()

                    if isinstance(channel_value, EventT):
                        event = channel_value
                        message = event.message
                        if (
                            not flow_control.is_active()
                            or message.generation_id != app.consumer_generation_id
                        ):
                            value = skipped_value
                            break
                        tp = message.tp
                        offset = message.offset
                        if message.topic in acking_topics and not message.tracked:
                            message.tracked = True  # Faust's inlined Consumer.track_message
                            add_unacked(message)
                            on_message_in(tp, offset, message)
                        sensor_state = on_stream_event_in(tp, offset, self, event)
                        _current_event.set(create_ref(event))
                        self.current_event = event
                        value = event.value
                    else:
                        value = channel_value
                        self.current_event = None
                        sensor_state = None

                    try:
                        for processor in processors:
                            value = processor(value)
                            if asyncio.iscoroutine(value):
                                value = await value
                        if self.join_strategy is not None:
                            value = await self.on_merge(value)
                    except Skip:
                        value = skipped_value

                try:
                    if value is not skipped_value:
                        self.events_total += 1
                        if not events:
                            yield value
                        elif event is not None:  # Faust's events() skips a plain value
                            yield event
                finally:
                    self.current_event = None
                    if event is not None and (do_ack or value is skipped_value):
                        last_stream_to_ack = event.ack()
                        message = event.message
                        tp = message.tp
                        offset = message.offset
                        on_stream_event_out(tp, offset, self, event, sensor_state)
                        if last_stream_to_ack:
                            on_message_out(tp, offset, message)
        except StopAsyncIteration:
            return
        finally:
            self._channel_stop_iteration(channel)
            if started_by_aiter:
                await self.stop()
                self.service_reset()


def stream_class(yield_every: int) -> type[Stream]:
    """The app's `Stream` setting: our stream, taking `yield_every` records per turn."""
    return cast(type[Stream], type("Stream", (Stream,), {"yield_every": max(1, yield_every)}))

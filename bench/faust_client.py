"""The Faust floor: the raw client's chain (bench/raw_client.py) run through Faust, with none of
orderstream's code: no decoding, no validation, no domain rules, no metrics.

Every record read from hop i is sent to hop i+1 the way our agents publish (straight to Faust's
producer), and the side records are table writes (RocksDB and its changelog, the way our agents
keep their state). Faust runs with our settings and our Faust classes (orderstream/faust_ext: the
transport's consumer and producer, the table manager, the write-through table), so the gap
between this loop and the worker is the cost of orderstream's own code, and the gap between this
loop and the raw client is the cost of Faust.

Started by bench/raw_loop.py as `python -m faust -A bench.faust_client worker`, configured by
BENCH_FAUST_* variables.
"""

from __future__ import annotations

import os
from typing import Any

import faust
import mode.loop

from bench.raw_client import hop_topic
from orderstream.faust_ext.logging import quiet_root_logger
from orderstream.faust_ext.stream import stream_class
from orderstream.faust_ext.tables import TableManager
from orderstream.faust_ext.transport import broker_urls
from orderstream.faust_ext.write_through import Table
from orderstream.settings import Settings

env = os.environ
PREFIX = env.get("BENCH_FAUST_PREFIX", "bench-")
HOPS = int(env.get("BENCH_FAUST_HOPS", "1"))
SIDE_PER_HOP = float(env.get("BENCH_FAUST_SIDE_PER_HOP", "0"))
PARTITIONS = int(env.get("BENCH_FAUST_PARTITIONS", "4"))
ours = Settings()  # the worker's defaults: the same producer, commit, poll and buffer settings

mode.loop.use(ours.event_loop)

app = faust.App(
    env.get("BENCH_FAUST_APP_ID", "bench-faust"),
    broker=broker_urls(env.get("BENCH_FAUST_BOOTSTRAP", "127.0.0.1:19092")),
    TableManager=TableManager,
    Table=Table,
    Stream=stream_class(ours.stream_yield_every),
    store="rocksdb://",
    datadir=env.get("BENCH_FAUST_DATADIR", "var/bench-faust"),
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    **ours.faust_flow(),
    web_bind="127.0.0.1",
    web_host="127.0.0.1",
)
sources = [hop_topic(PREFIX, i) for i in range(HOPS)]
following = {src: hop_topic(PREFIX, i + 1) for i, src in enumerate(sources)}
side = app.Table("side", partitions=PARTITIONS, key_type=bytes, value_type=bytes)


@app.task  # type: ignore[untyped-decorator]
async def _tune() -> None:
    """As the worker does (orderstream/worker/app.py): no debug records built, the same buffer
    bound."""
    quiet_root_logger()
    app.producer.buffer.max_messages = ours.producer_buffer_max


chain = app.topic(*sources, key_serializer="raw", value_serializer="raw", partitions=PARTITIONS)


@app.agent(chain, name="forward")
async def forward(stream: Any) -> None:
    credit = 0.0
    async for event in stream.events():
        target = following[event.message.topic]
        await app.producer.send(target, event.key, event.value, None, None, None)
        credit += SIDE_PER_HOP
        while credit >= 1.0:
            side[event.key] = event.value
            credit -= 1.0

"""The raw-client ceiling: a plain aiokafka consume -> produce loop, no framework, no parsing.

Run as its own process (`python -m bench.raw_client ...`) so its memory and CPU are its own.
Each record read from hop i is written to hop i+1, plus side records (standing in for the
changelog writes of a stateful step) so that it writes as many records per order as the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

# The same producer and commit settings as the Faust app (orderstream/worker/app.py).
LINGER_MS = 5
COMMIT_INTERVAL_MS = 1000


def hop_topic(prefix: str, hop: int) -> str:
    return f"{prefix}hop-{hop}"


def side_topic(prefix: str) -> str:
    return f"{prefix}hop-side"


async def forward(bootstrap: str, prefix: str, hops: int, side_per_hop: float, group: str) -> None:
    """Move every record along the chain hop-0 -> ... -> hop-<hops> until SIGTERM."""
    sources = [hop_topic(prefix, i) for i in range(hops)]
    following = {src: hop_topic(prefix, i + 1) for i, src in enumerate(sources)}
    side = side_topic(prefix)
    consumer = AIOKafkaConsumer(
        *sources,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        auto_commit_interval_ms=COMMIT_INTERVAL_MS,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=LINGER_MS)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await producer.start()
    await consumer.start()
    credit = 0.0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            for tp, records in batch.items():
                target = following[tp.topic]
                for rec in records:
                    await producer.send(target, rec.value, key=rec.key)
                    credit += side_per_hop
                    while credit >= 1.0:
                        await producer.send(side, rec.value, key=rec.key)
                        credit -= 1.0
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--hops", type=int, required=True)
    parser.add_argument("--side-per-hop", type=float, required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args()
    asyncio.run(forward(args.bootstrap, args.prefix, args.hops, args.side_per_hop, args.group))


if __name__ == "__main__":
    main()

"""Keep an aiokafka client's metadata updates alive.

aiokafka's client refreshes its cluster metadata in one background task
(`AIOKafkaClient._md_synchronizer`), which every wait for fresh metadata depends on: finding the
group coordinator (commits, heartbeats), offset look-ups, a producer's leader look-ups. The task
catches only Kafka's own errors from the broker: any other exception ends it, and from then on
every one of those waits waits forever, with nothing in the log. Seen once in the broker-faults
test: after a broker's kill -9, a worker's consumer never committed or fetched again (a commit
pending for 15 minutes, the partition watchdog's offset look-ups timing out every 90 s), which
fits uvloop's `RuntimeError` on a write to a connection the broker reset (aiokafka #1038: the
client catches `OSError` only).

`guard` wraps a client's task before the client starts: an exception that would end it is logged
with its traceback, counted (`orderstream_kafka_metadata_restarts{client}`), and the task goes on
after the client's retry backoff; the update a waiter asked for is done by the next round, so no
waiter is left behind. A broker that stays unreachable keeps failing the way aiokafka reports it
(its timeouts), not silently.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from orderstream.observability import metrics

log = logging.getLogger(__name__)


def guard(client: Any, name: str) -> Any:
    """Wrap the metadata task of the aiokafka `client` (an `AIOKafkaClient`, not started yet);
    `name` labels its log lines and metric. Returns the client."""
    if getattr(client, "_orderstream_guarded", False):
        return client
    synchronize = client._md_synchronizer  # aiokafka's, bound: one round loop until it raises

    async def synchronizer() -> None:
        while True:
            try:
                await synchronize()
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.kafka_metadata_restarted(name)
                log.exception(
                    "the %s Kafka client's metadata updates failed; restarted (every wait for "
                    "metadata would have waited forever)",
                    name,
                )
                await asyncio.sleep(client._retry_backoff)

    client._md_synchronizer = synchronizer
    client._orderstream_guarded = True
    return client

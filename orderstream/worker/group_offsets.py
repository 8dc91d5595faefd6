"""The application's consumer group as the broker sees it: per partition, the committed offset
and the end offset, whichever worker owns the partition. The lag gauges show it; the saga timer
reads it to tell a step whose records are queued (a backlog being worked through) from one whose
reply was lost."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from orderstream.kafka.auth import client_options
from orderstream.worker.app import app, settings


class Progress(NamedTuple):
    committed: int  # the group's committed offset (the start, if it never committed)
    end: int  # the broker's end offset

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


class GroupOffsets:
    """One admin client per worker, started on first use (the gauge service closes it)."""

    def __init__(self) -> None:
        self.admin: AIOKafkaAdminClient | None = None

    async def close(self) -> None:
        if self.admin is not None:
            admin, self.admin = self.admin, None
            await admin.close()

    async def progress(self, tps: Iterable[Any]) -> dict[tuple[str, int], Progress]:
        """(topic, partition) -> Progress, for any partitions of the group's topics."""
        keys = sorted({(tp.topic, tp.partition) for tp in tps})
        if not keys:
            return {}
        wanted = [TopicPartition(t, p) for t, p in keys]
        ends = await app.consumer.highwaters(*wanted)
        answer = await (await self._admin()).list_consumer_group_offsets(
            app.conf.id, partitions=wanted
        )
        committed = {(tp.topic, tp.partition): meta.offset for tp, meta in answer.items()}
        # A partition the group never committed is consumed from its start.
        never = [tp for tp in wanted if committed.get((tp.topic, tp.partition), -1) < 0]
        starts = await app.consumer.earliest_offsets(*never) if never else {}
        for tp in never:
            committed[(tp.topic, tp.partition)] = starts[tp]
        return {
            (tp.topic, tp.partition): Progress(committed[(tp.topic, tp.partition)], ends[tp])
            for tp in wanted
        }

    async def _admin(self) -> AIOKafkaAdminClient:
        if self.admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=settings.bootstrap_servers,
                client_id=f"{settings.app_id}-offsets",
                **client_options(settings),
            )
            await admin.start()
            self.admin = admin
        return self.admin


group_offsets = GroupOffsets()

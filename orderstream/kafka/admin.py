"""Creates the registry's topics with their explicit configs; safe to run any number of times."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from orderstream.contracts.topics import TopicSpec, registry
from orderstream.errors import BrokerError
from orderstream.kafka.auth import client_options
from orderstream.settings import Settings


async def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; check existing ones have the partitions the registry asks for.

    Returns the names of the topics it created.
    """
    specs = list(registry(settings).values())
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.app_id}-admin",
        **client_options(settings),
    )
    await admin.start()
    try:
        existing = await _partition_counts(admin)
        missing = [s for s in specs if s.name not in existing]
        wrong = [
            f"{s.name} has {existing[s.name]} partitions, the registry says {s.partitions}"
            for s in specs
            if s.name in existing and existing[s.name] != s.partitions
        ]
        if wrong:
            raise BrokerError(
                "topic partition counts differ from the registry (co-partitioning "
                "needs them equal): "
                + "; ".join(wrong)
                + ". Recreate the topics or set ORDERSTREAM_PARTITIONS to match."
            )
        if missing:
            await admin.create_topics([_new_topic(s) for s in missing])
        return [s.name for s in missing]
    finally:
        await admin.close()


def _new_topic(spec: TopicSpec) -> NewTopic:
    return NewTopic(
        spec.name, spec.partitions, spec.replication_factor, topic_configs=dict(spec.configs)
    )


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    names = await admin.list_topics()
    if not names:
        return {}
    described = await admin.describe_topics(list(names))
    return {d["topic"]: len(d["partitions"]) for d in described}

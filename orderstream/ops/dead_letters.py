"""`orderstream dlq`: list dead letters with their reasons, and replay chosen ones after a fix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from orderstream.contracts.dead_letters import parse_headers
from orderstream.contracts.topics import registry
from orderstream.kafka.auth import client_options
from orderstream.kafka.reader import read_topic
from orderstream.settings import Settings


@dataclass(frozen=True)
class Letter:
    """One dead letter: where it sits in the DLQ, why it is there, and what it was."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: dict[str, str]

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    def line(self) -> str:
        r = self.reason
        preview = (self.value or b"")[:60].decode("utf-8", "replace").replace("\n", " ")
        return (
            f"{self.ref:>10}  {r.get('kind', '?'):<22} {r.get('topic', '?')}"
            f"/{r.get('partition', '?')}@{r.get('offset', '?')}  {r.get('message', '')[:80]}"
            f"  | {preview}"
        )


async def letters(settings: Settings) -> list[Letter]:
    records = await read_topic(settings, registry(settings)["dead_letters"].name)
    return [
        Letter(r.partition, r.offset, r.key, r.value, parse_headers(r.headers)) for r in records
    ]


def choose(
    found: Iterable[Letter],
    *,
    refs: Iterable[str] = (),
    kind: str | None = None,
    everything: bool = False,
) -> list[Letter]:
    wanted = set(refs)
    return [
        x
        for x in found
        if everything or x.ref in wanted or (kind is not None and x.reason.get("kind") == kind)
    ]


async def replay(settings: Settings, chosen: list[Letter]) -> int:
    """Send each chosen letter back to the topic it came from, key and bytes unchanged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        **client_options(settings),
    )
    await producer.start()
    try:
        for x in chosen:
            await producer.send_and_wait(
                x.reason["topic"],
                x.value,
                key=x.key,
                headers=[("x-dlq-replay-of", x.ref.encode())],
            )
    finally:
        await producer.stop()
    return len(chosen)

"""Dead letters: an event that cannot be decoded, validated or applied is kept, with the reason
in its headers, on the dead-letter topic; the worker goes on with the next one."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app import metrics, tracing
from app.events import utcnow

log = logging.getLogger(__name__)

HEADER_PREFIX = "x-dlq-"


@dataclass(frozen=True)
class DeadLetter:
    kind: str
    message: str
    topic: str
    partition: int
    offset: int
    attempts: int = 1

    def headers(self, app_id: str) -> list[tuple[str, bytes]]:
        fields = {
            "kind": self.kind,
            "message": self.message[:1000],
            "topic": self.topic,
            "partition": str(self.partition),
            "offset": str(self.offset),
            "attempts": str(self.attempts),
            "failed-at": utcnow().isoformat(),
            "app": app_id,
        }
        return [(HEADER_PREFIX + k, v.encode()) for k, v in fields.items()]


def parse_headers(headers: Any) -> dict[str, str]:
    """Dead-letter headers back to a dict (for `orderstream dlq` and the tests)."""
    items = headers.items() if isinstance(headers, dict) else headers or []
    return {
        k[len(HEADER_PREFIX) :]: (v.decode() if isinstance(v, bytes) else str(v))
        for k, v in items
        if k.startswith(HEADER_PREFIX)
    }


async def dead_letter(event: Any, kind: str, message: str) -> None:
    """Park a Faust event on the dead-letter topic, keeping its key and raw value."""
    from app.application import app, topic

    msg = event.message
    letter = DeadLetter(kind, message, msg.topic, msg.partition, msg.offset)
    log.warning(
        "dead letter %s/%s@%s: %s: %s", msg.topic, msg.partition, msg.offset, kind, message[:200]
    )
    await topic("dead_letters").send(
        key=event.key, value=event.value, headers=letter.headers(app.conf.id)
    )
    metrics.dead_lettered(kind)
    tracing.mark_failed(kind, message)


async def guarded(agent: str, event: Any, handle: Callable[[], Awaitable[None]]) -> None:
    """Run one event's handler, in partition order (app/delivery.py); any failure parks the
    event as a dead letter instead of stopping the agent (a worker never dies of one bad
    message)."""
    from app.delivery import in_order
    from app.domain.common import RuleViolation
    from app.errors import EventError

    if not in_order(agent, event.message):
        return
    try:
        await handle()
    except (EventError, RuleViolation) as exc:
        await dead_letter(event, exc.kind, exc.message)
    except Exception as exc:  # a bug or an unexpected input: keep it, say what happened
        log.exception("unexpected error on %s", event.message.topic)
        await dead_letter(event, "internal_error", f"{type(exc).__name__}: {exc}")

"""Dead letters, the worker's side: an event that cannot be decoded, validated or applied is
kept, with the reason in its headers (orderstream/contracts/dead_letters.py), on the dead-letter
topic; the worker goes on with the next one. Any other failure is not the event's fault and is
never a dead letter (`guarded`). Listing and replaying them: orderstream/ops/dead_letters.py."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, cast

from orderstream.contracts.dead_letters import DeadLetter
from orderstream.domain.common import RuleViolation, StateBehind
from orderstream.errors import EventError
from orderstream.observability import metrics, tracing

log = logging.getLogger(__name__)
_application: ModuleType | None = None  # orderstream.worker.app, once a handler ran


async def dead_letter(event: Any, kind: str, message: str) -> None:
    """Park a Faust event on the dead-letter topic, keeping its key and raw value; returns once
    the broker has it (raises otherwise: the record is then not committed over)."""
    from orderstream.worker.app import app, send, topic_name

    msg = event.message
    letter = DeadLetter(kind, message, msg.topic, msg.partition, msg.offset)
    log.warning(
        "dead letter %s/%s@%s: %s: %s", msg.topic, msg.partition, msg.offset, kind, message[:200]
    )
    headers = dict(letter.headers(app.conf.id))
    await (await send(topic_name("dead_letters"), event.key, event.value, headers))
    metrics.dead_lettered(kind)
    tracing.mark_failed(kind, message)


async def guarded(agent: str, event: Any, handle: Callable[[], Awaitable[None]]) -> None:
    """Run one event's handler. Bad input (undecodable, invalid, inapplicable) becomes a dead
    letter with its reason; any other error (a store, disk or broker failing) is retried in
    place with doubling waits, then the record's partition stops and is rewound to it after a
    back-off (orderstream/faust_ext/consumer.py): it is never a dead letter, and never skipped. A
    dead letter that cannot be sent is such an error. A reply ahead of the state it answers is set
    aside. A worker never dies of one message."""
    application = _application or _import_application()
    app, settings = application.app, application.settings
    consumer = cast(Any, app.consumer)
    message = event.message
    if not consumer.may_apply(message):
        return  # a record before it was not processed: it comes again, in order
    error: Exception | None = None
    for attempt in range(1, settings.handler_max_attempts + 1):
        try:
            try:
                await handle()
            except StateBehind as exc:
                # Set aside: its state is behind the command that caused it (rebuilt after a
                # crash, or a backlog). The step that asked is processed again and asks again
                # (deterministic ids; inventory and payment answer a repeat the same way), and
                # the order's deadline re-drives it otherwise: not a dead letter.
                log.info("%s: set aside until its state catches up: %s", agent, exc.message)
                metrics.reply_ahead_of_state(exc.message.split(" ", 1)[0])
            except (EventError, RuleViolation) as exc:
                await dead_letter(event, exc.kind, exc.message)
            return
        except Exception as exc:  # not the record's fault: try it again
            error = exc
            log.warning(
                "%s: %s/%d@%d failed (attempt %d of %d): %r",
                agent,
                message.topic,
                message.partition,
                message.offset,
                attempt,
                settings.handler_max_attempts,
                exc,
            )
            metrics.handler_retried(agent)
            if attempt < settings.handler_max_attempts:
                await asyncio.sleep(settings.handler_retry_backoff_s * 2 ** (attempt - 1))
    log.error(
        "%s: %s/%d@%d failed %d times (%r): its partition stops here and is processed again "
        "from this record in %.0f s; check the store, the disk and the broker",
        agent,
        message.topic,
        message.partition,
        message.offset,
        settings.handler_max_attempts,
        error,
        settings.partition_fault_retry_s,
    )
    consumer.fault(message, f"{agent}: {error!r}", settings.partition_fault_retry_s)


def _import_application() -> ModuleType:
    """The app module, imported on first use as before (no import cycle whatever
    orderstream.worker.app comes to import) and kept: three function-level imports cost ~3 µs on
    every record. Its attributes are still read on every call, so a replaced or patched `settings`
    is seen."""
    global _application
    _application = importlib.import_module("orderstream.worker.app")
    return _application

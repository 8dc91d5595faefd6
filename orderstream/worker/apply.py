"""The idempotent step every stateful agent runs for one Kafka record: apply it once.

A record comes again after a crash or a rebalance (its offset was not committed over). Each
key's state carries the highest offset it applied per source topic (`applied`, stamped here),
so a redelivery is told from a new record in one comparison. A redelivery is not decided
again, but what its first run did may be lost: the state's changelog write and the events it
sent. So the state is written again (`redelivered` says which: the saga may settle the order
meanwhile; it keeps its watermark, the record is at or below it), its events are sent again,
and it counts as a duplicate. A new record is decided by the agent's rule (`decide`), and the
state it gives is stamped with the record.

The state is written here, last: after whatever the agent writes on the side in `decide` or
`redelivered` (the inventory's committed-hold marker and sales). A step that failed half-way
(retried in place) or whose writes were partly lost then comes again through the rules, not as
a redelivery. The events are returned, not sent: the agent sends them once the state is
written. The callables are awaited, which lets other steps run only where they wait themselves
(the inline charge): as before, the rest of a step never interleaves with another.

Not every agent runs it: the read models whose records are identified by where they came from
(an outcome's order-status origin, carried in a header), not by their own offset, keep that
check in their rules, which `orderstream replay` runs too (orderstream/domain/projections.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from orderstream.contracts.events import Event
from orderstream.domain.common import Decision, already_applied, stamp
from orderstream.domain.state import State
from orderstream.observability import metrics

S = TypeVar("S", bound=State)  # a state model with an `applied` watermark


async def apply_once(
    agent: str,
    event: Any,
    key: str,
    *,
    get: Callable[[str], S | None],
    put: Callable[[S], None],
    decide: Callable[[S | None], Awaitable[Decision[S]]],
    redelivered: Callable[[S], Awaitable[Decision[S]]],
    once_per_key: bool = False,
) -> list[Event]:
    """Apply the Faust `event`'s record to the state stored under `key` and return the events
    to send. `decide`: the new state (None: unchanged, nothing written) and events, for a record
    not applied yet. `redelivered`: the state to write again (None: as stored) and the events to
    send again. `once_per_key`: any stored state makes the record a repeat, whatever its offset
    (a payment is charged once per order, whichever request asks)."""
    msg = event.message
    state = get(key)
    if state is not None and (once_per_key or _applied(state, msg.topic, msg.offset)):
        again = await redelivered(state)
        put(again.state or state)  # its changelog write may have been lost (not committed over)
        metrics.duplicate_dropped(agent)
        return again.emit
    decision = await decide(state)
    if decision.state is not None:
        put(stamp(decision.state, msg.topic, msg.offset))
    return decision.emit


def _applied(state: State, topic: str, offset: int) -> bool:
    """`already_applied` on the state's own watermark (the field `stamp` writes)."""
    watermark: Mapping[str, int] = state.applied  # type: ignore[attr-defined]
    return already_applied(watermark, topic, offset)

"""Pieces shared by the domain modules: the decision type and the replay watermark."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from orderstream.contracts.events import Event
from orderstream.domain.state import State, replace
from orderstream.errors import OrderstreamError

S = TypeVar("S")


class RuleViolation(OrderstreamError):
    """An event that is valid on its own but cannot be applied to the current state."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Decision(Generic[S]):
    """What a step decided: the new state (None: unchanged) and the events to emit.

    `duplicate`: the event was applied before (or is a harmless late repeat): drop it.
    `out_of_order`: the event is impossible in the key's current state (a reply to a step not
    taken yet, an answer contradicting the one applied): why, in words. State is unchanged and
    the agent dead-letters the event with kind "out_of_order" (to replay once it makes sense).
    `ahead`: with `out_of_order`, the event answers a step the state has not reached yet: after
    a crash the state is rebuilt from a changelog that can be behind the commands already sent,
    and the record that takes the step is processed again and asks again. The agent sets the
    event aside: it is not a dead letter.
    """

    state: S | None = None
    emit: list[Event] = field(default_factory=list)
    duplicate: bool = False
    out_of_order: str | None = None
    ahead: bool = False


class StateBehind(RuleViolation):
    """An event that answers a step its key's state has not reached yet (`Decision.ahead`)."""

    def __init__(self, message: str) -> None:
        super().__init__("out_of_order", message)


def already_applied(applied: Mapping[str, int], topic: str, offset: int) -> bool:
    """True when this Kafka record was applied before (a redelivery after a crash or rebalance).

    The state records the highest offset applied per source topic; since a key always lives in
    one partition, that watermark tells a redelivery from a new message in one comparison.
    """
    return offset <= applied.get(topic, -1)


T = TypeVar("T", bound=State)


def stamp(state: T, topic: str, offset: int) -> T:
    """The state (a model with an `applied` watermark) with this record marked as applied."""
    applied: dict[str, int] = state.applied  # type: ignore[attr-defined]
    return replace(state, applied={**applied, topic: offset})

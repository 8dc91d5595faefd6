"""The idempotent step the stateful agents share: a new record is decided, stamped and written;
a redelivered one (at or below the state's watermark) is not decided again, its state is
written again and it counts as a duplicate. No Faust app: a plain dict stands for the table."""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace
from typing import Any

from prometheus_client import REGISTRY

from orderstream.contracts.events import Event
from orderstream.domain.common import Decision
from orderstream.domain.saga import timeout_event
from orderstream.domain.state import State, replace
from orderstream.worker.apply import apply_once
from orderstream.worker.tables.model_table import ModelTable

AGENT = "apply-test"
TOPIC = "requests"


class Counter(State, frozen=True, kw_only=True):
    key: str
    n: int = 0
    applied: dict[str, int] = {}


def record(offset: int) -> Any:
    """A Faust event as the helper reads it: its message's topic and offset."""
    return SimpleNamespace(message=SimpleNamespace(topic=TOPIC, offset=offset))


@cache
def sent(n: int) -> Event:
    """An event to send, the same one for the same `n`."""
    return timeout_event(f"o-{n}", "RESERVING", float(n))


def duplicates() -> float:
    return REGISTRY.get_sample_value("orderstream_duplicates_dropped_total", {"agent": AGENT}) or 0


class Step:
    """A table and an agent's two callables, recording what the helper did with them."""

    def __init__(self, stored: Counter | None = None) -> None:
        self.raw: dict[bytes, bytes] = {}
        self.table = ModelTable(self.raw, Counter)
        if stored is not None:
            self.table.put(stored.key, stored)
        self.puts: list[Counter] = []
        self.decided: list[Counter | None] = []
        self.redelivered: list[Counter] = []

    def put(self, state: Counter) -> None:
        self.puts.append(state)
        self.table.put(state.key, state)

    async def decide(self, state: Counter | None) -> Decision[Counter]:
        self.decided.append(state)
        n = 0 if state is None else state.n
        return Decision(replace(state or Counter(key="k"), n=n + 1), [sent(n)])

    async def again(self, state: Counter) -> Decision[Counter]:
        self.redelivered.append(state)
        return Decision(emit=[sent(-1)])

    async def apply(self, offset: int, **options: Any) -> list[Event]:
        """The helper on this step's table (`options`: other callables, once_per_key)."""
        callables = {"decide": self.decide, "redelivered": self.again, **options}
        return await apply_once(
            AGENT, record(offset), "k", get=self.table.get, put=self.put, **callables
        )


async def test_a_new_record_is_decided_stamped_and_written() -> None:
    step = Step()
    before = duplicates()

    emit = await step.apply(7)

    assert step.decided == [None] and step.redelivered == []
    assert step.puts == [Counter(key="k", n=1, applied={TOPIC: 7})]
    assert step.table.get("k") == step.puts[0]
    assert emit == [sent(0)]
    assert duplicates() == before


async def test_a_record_after_the_watermark_is_new_and_moves_it() -> None:
    stored = Counter(key="k", n=1, applied={TOPIC: 7, "other": 50})
    step = Step(stored)

    await step.apply(8)

    assert step.decided == [stored]
    assert step.puts == [Counter(key="k", n=2, applied={TOPIC: 8, "other": 50})]


async def test_a_redelivered_record_is_not_decided_its_state_is_written_again() -> None:
    stored = Counter(key="k", n=1, applied={TOPIC: 7})
    step = Step(stored)
    before = duplicates()

    for offset in (7, 3):  # the record that made the state, and one before it
        emit = await step.apply(offset)
        assert emit == [sent(-1)]

    assert step.decided == []
    assert step.redelivered == [stored, stored]
    assert step.puts == [stored, stored]  # as it was: the watermark does not move back
    assert duplicates() == before + 2


async def test_a_redelivery_may_write_a_state_that_moved_on_keeping_its_watermark() -> None:
    # e.g. the saga settling an order on the inline charge it makes again
    stored = Counter(key="k", n=1, applied={TOPIC: 7})
    step = Step(stored)

    async def settled(state: Counter) -> Decision[Counter]:
        return Decision(replace(state, n=9), [sent(9)])

    assert await step.apply(7, redelivered=settled) == [sent(9)]
    assert step.puts == [Counter(key="k", n=9, applied={TOPIC: 7})]


async def test_a_decision_without_a_state_writes_nothing() -> None:
    step = Step()

    async def nothing(state: Counter | None) -> Decision[Counter]:
        return Decision(emit=[sent(1)])

    assert await step.apply(1, decide=nothing) == [sent(1)]
    assert step.puts == [] and step.raw == {}


async def test_once_per_key_any_stored_state_is_a_repeat_whatever_its_offset() -> None:
    stored = Counter(key="k", n=1, applied={TOPIC: 7})
    step = Step(stored)
    before = duplicates()

    await step.apply(99, once_per_key=True)

    assert step.decided == [] and step.puts == [stored]
    assert duplicates() == before + 1
    fresh = Step()
    await fresh.apply(99, once_per_key=True)
    assert fresh.decided == [None]  # nothing stored: decided as new

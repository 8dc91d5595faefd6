"""The order summaries agent with Faust's test_context: the first outcome of an order is stored as
its summary and relayed once to its customer's key; the saga announcing it again (a new record) is
dropped; the record that made the summary, redelivered, is relayed and stored again, the same;
a record placed by another partitioner is re-published where it belongs, not applied."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import orderstream.worker.agents.order_summaries as summaries_module
import orderstream.worker.app as application
from orderstream.contracts.events import encode
from orderstream.contracts.topics import registry
from orderstream.domain.projections import ORIGIN_HEADER, OrderSummary, Origin, summarize
from orderstream.kafka.partitioner import key_hash
from orderstream.worker.agents.order_summaries import order_summaries_agent
from orderstream.worker.tables.order_summaries import get_summary, put_summary
from tests.unit.domain.test_projection_rules import T, outcome

pytestmark = pytest.mark.asyncio

STATUS = registry(application.settings)["order_status"]


@dataclass(frozen=True)
class Relayed:
    role: str
    key: str
    raw: bytes
    headers: dict[str, bytes]


@pytest.fixture
def relayed(monkeypatch: pytest.MonkeyPatch) -> list[Relayed]:
    """What the agent relays, captured instead of sent."""
    out: list[Relayed] = []

    async def capture(
        role: str, key: str, event: Any, raw: bytes, headers: dict[str, bytes]
    ) -> None:
        out.append(Relayed(role, key, raw, headers))

    monkeypatch.setattr(summaries_module, "relay", capture)
    return out


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> list[OrderSummary]:
    """Every summary the agent writes (and writes to the table, as before)."""
    out: list[OrderSummary] = []

    def spy(summary: OrderSummary) -> None:
        out.append(summary)
        put_summary(summary)

    monkeypatch.setattr(summaries_module, "put_summary", spy)
    return out


def home(order: str) -> int:
    """The partition of order-status Kafka's default partitioner gives the order's key."""
    return key_hash(order.encode()) % STATUS.partitions


# The table outlives one test_context, so each test uses its own order.
def announce(order: str, customer: str, minutes: int = 0) -> bytes:
    """The saga's outcome of the order, announced `minutes` after the first announcement."""
    return encode(outcome(order, customer=customer, at=T + timedelta(minutes=minutes)))


async def test_the_first_outcome_is_stored_and_relayed_once_to_its_customer(
    relayed: list[Relayed],
) -> None:
    order, customer = "os-1", "c-os-1"
    value = announce(order, customer)
    async with order_summaries_agent.test_context() as agent:
        await agent.put(value, key=order.encode(), partition=home(order))

    origin = Origin(partition=home(order), offset=0)
    assert relayed == [
        Relayed("status_by_customer", customer, value, {ORIGIN_HEADER: origin.header()})
    ]
    assert get_summary(order) == summarize(outcome(order, customer=customer), origin)


async def test_an_outcome_announced_again_is_dropped_and_relays_nothing(
    relayed: list[Relayed],
) -> None:
    order, customer = "os-2", "c-os-2"
    async with order_summaries_agent.test_context() as agent:
        # Given the order's outcome at offset 0
        await agent.put(announce(order, customer), key=order.encode(), partition=home(order))
        first = get_summary(order)
        assert first is not None and len(relayed) == 1

        # When the saga announces it again, later: a new record, offset 1
        await agent.put(
            announce(order, customer, minutes=5), key=order.encode(), partition=home(order)
        )

        # Then nothing more is relayed and the summary is still the first outcome's
        assert len(relayed) == 1
        assert get_summary(order) == first
        assert first.origin == Origin(partition=home(order), offset=0)
        assert first.settledAt == T


async def test_the_record_that_made_the_summary_redelivered_relays_it_again_the_same(
    relayed: list[Relayed], stores: list[OrderSummary]
) -> None:
    order, customer = "os-3", "c-os-3"
    value = announce(order, customer)
    async with order_summaries_agent.test_context() as agent:
        # Given the outcome at offset 0, and announced again at offset 1 (dropped)
        await agent.put(value, key=order.encode(), partition=home(order))
        await agent.put(
            announce(order, customer, minutes=5), key=order.encode(), partition=home(order)
        )
        first = get_summary(order)
        assert first is not None and len(relayed) == 1 and stores == [first]

        # When offset 0 is delivered again (a crash before the offset commit: its relay and its
        # changelog write may have been lost)
        agent.sent_offset = 0
        await agent.put(value, key=order.encode(), partition=home(order))

        # Then it is relayed again, the same (the history drops the repeat by its origin), and
        # the same summary is stored again: still one summary, the first
        assert len(relayed) == 2
        assert relayed[1] == relayed[0]
        assert stores == [first, first]
        assert get_summary(order) == first


@pytest.mark.parametrize(
    "misplace",
    ["partition", "key"],
    ids=["other-partition", "customer-key"],
)
async def test_a_record_placed_by_another_partitioner_is_re_published_where_it_belongs(
    relayed: list[Relayed], monkeypatch: pytest.MonkeyPatch, misplace: str
) -> None:
    order, customer = f"os-4-{misplace}", f"c-os-4-{misplace}"
    value = announce(order, customer)
    republished: list[tuple[str, bytes, bytes]] = []

    async def send(name: str, key: bytes, raw: bytes, headers: dict[str, bytes] | None) -> None:
        republished.append((name, key, raw))

    monkeypatch.setattr(application, "send", send)
    async with order_summaries_agent.test_context() as agent:
        # Given the outcome on another partition than its order's, or keyed by its customer
        if misplace == "partition":
            await agent.put(
                value, key=order.encode(), partition=(home(order) + 1) % STATUS.partitions
            )
        else:
            await agent.put(value, key=customer.encode(), partition=home(order))

        # Then it is re-published to order-status under the order's key, unchanged, and
        # neither relayed nor stored here
        assert republished == [(STATUS.name, order.encode(), value)]
        assert relayed == [] and get_summary(order) is None

        # When the copy comes in on the order's partition (offset 1), it is the first outcome
        await agent.put(value, key=order.encode(), partition=home(order))
        origin = Origin(partition=home(order), offset=1)
        assert [(r.key, r.headers) for r in relayed] == [
            (customer, {ORIGIN_HEADER: origin.header()})
        ]
        summary = get_summary(order)
        assert summary is not None and summary.origin == origin

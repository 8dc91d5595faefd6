"""The customer history agent with Faust's test_context: each listed order's summary is a record
of its own, the oldest leaves when a newer one comes, and a replay of the log changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orderstream.contracts.events import encode
from orderstream.domain.projections import (
    HISTORY_LIMIT,
    ORIGIN_HEADER,
    CustomerOrders,
    OrderSummary,
    listed_key,
    listed_ref,
)
from orderstream.worker.agents.customer_orders import customer_orders_agent
from orderstream.worker.tables.customer_orders import customer_orders_table, get_history, get_listed
from tests.unit.domain.test_projection_rules import T, outcome

pytestmark = pytest.mark.asyncio


def summary_of(history: CustomerOrders, order_id: str) -> OrderSummary | None:
    ref = listed_ref(history, order_id)
    found = get_listed(listed_key(history.customerId, ref)) if ref is not None else None
    return found if found is not None and found.orderId == order_id else None


def records_of(customer: str) -> list[bytes]:
    return [k for k in customer_orders_table if k.startswith(f"{customer}/".encode())]


async def test_history_keeps_the_newest_summaries_and_a_replay_changes_nothing() -> None:
    customer = "c-agent-1"  # the table outlives one test_context
    records = [
        encode(outcome(f"o-{n}", customer=customer, placed=T + timedelta(minutes=n)))
        for n in range(HISTORY_LIMIT + 2)
    ]
    async with customer_orders_agent.test_context() as agent:
        for n, value in enumerate(records):
            headers = {ORIGIN_HEADER: f"0:{n}".encode()}
            await agent.put(value, key=customer.encode(), headers=headers)
        once = get_history(customer)
        assert once is not None and once.placed == HISTORY_LIMIT + 2
        assert [r.orderId for r in once.recent][:2] == [
            f"o-{HISTORY_LIMIT + 1}",
            f"o-{HISTORY_LIMIT}",
        ]
        newest = summary_of(once, f"o-{HISTORY_LIMIT + 1}")
        assert newest is not None and newest.totalCents == 2550
        assert summary_of(once, "o-0") is None and summary_of(once, "o-1") is None
        assert summary_of(once, "o-2") is not None
        assert len(records_of(customer)) == HISTORY_LIMIT  # the newest written over the oldest

        # When the whole log comes again (a consumer that lost its committed offsets)
        agent.sent_offset = 0
        for n, value in enumerate(records):
            headers = {ORIGIN_HEADER: f"0:{n}".encode()}
            await agent.put(value, key=customer.encode(), headers=headers)

        # Then the history is as after one delivery
        assert get_history(customer) == once
        assert summary_of(once, "o-0") is None and summary_of(once, "o-2") is not None
        assert len(records_of(customer)) == HISTORY_LIMIT

"""The customer history agent with Faust's test_context: each listed order's summary is a record
of its own, the oldest leaves when a newer one comes, and a replay of the log changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orderstream.contracts.events import encode
from orderstream.domain.projections import HISTORY_LIMIT, ORIGIN_HEADER
from orderstream.worker.agents.customer_orders import customer_orders_agent
from orderstream.worker.tables.customer_orders import get_history, get_listed
from tests.unit.domain.test_projection_rules import T, outcome

pytestmark = pytest.mark.asyncio


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
        newest = get_listed(customer, f"o-{HISTORY_LIMIT + 1}")
        assert newest is not None and newest.totalCents == 2550
        assert get_listed(customer, "o-0") is None and get_listed(customer, "o-1") is None
        assert get_listed(customer, "o-2") is not None

        # When the whole log comes again (a consumer that lost its committed offsets)
        agent.sent_offset = 0
        for n, value in enumerate(records):
            headers = {ORIGIN_HEADER: f"0:{n}".encode()}
            await agent.put(value, key=customer.encode(), headers=headers)

        # Then the history is as after one delivery
        assert get_history(customer) == once
        assert get_listed(customer, "o-0") is None and get_listed(customer, "o-2") is not None

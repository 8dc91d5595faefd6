"""The bound on open sagas holds under a backlog: a worker never drives more than
`saga_max_open` orders at once, plus what was already handed over (its intake queue and one
fetch of `max_poll_records`). Measured after the fact from the records: an order is open from its
first saga state (orders changelog) to its terminal status (order-status), by Kafka timestamps."""

from __future__ import annotations

import asyncio

import pytest

from devtools import demo
from orderstream.contracts.topics import changelog_topic, registry
from orderstream.kafka.reader import read_topic
from orderstream.worker.agents.order_intake import ORDER_QUEUE
from tests.integration.conftest import Stack
from tests.integration.test_pipeline import _assert_run_correct

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ORDERS = 6_000
MAX_OPEN = 300
MAX_POLL = 200


async def _most_open(s: Stack) -> int:
    opened: dict[bytes, int] = {}
    for rec in await read_topic(s.settings, changelog_topic(s.settings, "orders")):
        opened.setdefault(rec.key, rec.timestamp)
    closed = {
        rec.key: rec.timestamp
        for rec in await read_topic(s.settings, registry(s.settings)["order_status"].name)
    }
    steps = sorted(
        [(t, 1) for t in opened.values()] + [(closed[k], -1) for k in opened if k in closed],
        key=lambda step: (step[0], step[1]),  # at the same millisecond, count the close first
    )
    now = most = 0
    for _, change in steps:
        now += change
        most = max(most, now)
    return most


def test_a_backlog_of_orders_is_driven_at_most_max_open_at_a_time(stack: type[Stack]) -> None:
    # Given a worker bounded to 300 open orders, fetching at most 200 records at a time
    s = stack(saga_max_open=MAX_OPEN, max_poll_records=MAX_POLL)
    s.worker()
    # When 6,000 orders arrive at once (sent as fast as the client can)
    result = asyncio.run(demo.run(s.settings, ORDERS, quiet=True))
    _assert_run_correct(result)
    # Then it never had more open than the bound plus what was already handed over
    most = asyncio.run(_most_open(s))
    print(f"\nmost orders open at once: {most} (bound {MAX_OPEN} + {ORDER_QUEUE} + {MAX_POLL})")
    assert MAX_OPEN * 0.8 <= most <= MAX_OPEN + ORDER_QUEUE + MAX_POLL

"""The inventory agent with Faust's test_context: a redelivered record (same offset) is not
applied again, a new duplicate (new offset) is absorbed by the rules, and a bad one is parked."""

from __future__ import annotations

from typing import Any

import pytest

import agents.inventory as inventory_agent_module
from agents.inventory import inventory_agent
from app.events import (
    CommitStock,
    Event,
    ReserveStock,
    StockAdjusted,
    StockAdjustmentData,
    StockLine,
    encode,
    utcnow,
)
from tables.inventory import get_stock
from tests.agents.conftest import capture_publish

pytestmark = pytest.mark.asyncio


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    return capture_publish(monkeypatch, inventory_agent_module)


# The table outlives one test_context, so each test uses its own product.
def restock(qty: int, sku: str = "SKU-1") -> bytes:
    return encode(
        StockAdjusted(
            eventId=f"adj-{sku}",
            timestamp=utcnow(),
            data=StockAdjustmentData(adjustmentId=f"adj-{sku}", productId=sku, delta=qty),
        )
    )


def line_cmd(
    cls: type[ReserveStock] | type[CommitStock], order: str, qty: int, sku: str = "SKU-1"
) -> bytes:
    return encode(
        cls(
            eventId=f"{cls.__name__}-{order}",
            timestamp=utcnow(),
            data=StockLine(orderId=order, productId=sku, quantity=qty),
        )
    )


async def test_redelivered_offsets_are_not_applied_twice(sent: list[Event]) -> None:
    async with inventory_agent.test_context() as agent:
        # Given stock 10, a reservation of 3 for o-1 and its commit, at offsets 0..2
        await agent.put(restock(10), key=b"SKU-1")
        await agent.put(line_cmd(ReserveStock, "o-1", 3), key=b"SKU-1")
        await agent.put(line_cmd(CommitStock, "o-1", 3), key=b"SKU-1")
        after_once = get_stock("SKU-1")
        assert after_once is not None
        assert (after_once.available, after_once.held, after_once.sold) == (7, 0, 3)

        # When the same records come again from offset 1 (a crash before the offset commit)
        agent.sent_offset = 1
        await agent.put(line_cmd(ReserveStock, "o-1", 3), key=b"SKU-1")
        await agent.put(line_cmd(CommitStock, "o-1", 3), key=b"SKU-1")

        # Then the stock is as after one delivery (the reserve would otherwise hold again)
        again = get_stock("SKU-1")
        assert again is not None
        assert (again.available, again.held, again.sold) == (7, 0, 3)
        assert again.conserved()


async def test_a_new_duplicate_reserve_holds_once_and_answers_again(sent: list[Event]) -> None:
    async with inventory_agent.test_context() as agent:
        await agent.put(restock(5, "SKU-2"), key=b"SKU-2")
        await agent.put(line_cmd(ReserveStock, "o-2", 2, "SKU-2"), key=b"SKU-2")
        await agent.put(line_cmd(ReserveStock, "o-2", 2, "SKU-2"), key=b"SKU-2")  # new offset
        stock = get_stock("SKU-2")
        assert stock is not None and (stock.available, stock.held) == (3, 2)
        assert [e.eventType for e in sent] == ["StockReserved", "StockReserved"]
        assert sent[0].eventId == sent[1].eventId


async def test_a_bad_record_is_dead_lettered_and_the_agent_goes_on(
    sent: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    parked: list[tuple[str, str]] = []

    async def park(event: Any, kind: str, message: str) -> None:
        parked.append((kind, message))

    monkeypatch.setattr("app.deadletter.dead_letter", park)
    async with inventory_agent.test_context() as agent:
        await agent.put(b"{not json", key=b"SKU-3")
        await agent.put(restock(4, "SKU-3"), key=b"SKU-3")
        stock = get_stock("SKU-3")
        assert stock is not None and stock.available == 4
    assert [k for k, _ in parked] == ["invalid_json"]


async def test_a_reserve_re_sent_after_its_commit_holds_nothing_and_sells_nothing_again(
    sent: list[Event],
) -> None:
    async with inventory_agent.test_context() as agent:
        # Given 10 in stock, and o-7's reservation of 3 committed
        await agent.put(restock(10, "SKU-7"), key=b"SKU-7")
        await agent.put(line_cmd(ReserveStock, "o-7", 3, "SKU-7"), key=b"SKU-7")
        await agent.put(line_cmd(CommitStock, "o-7", 3, "SKU-7"), key=b"SKU-7")
        sent.clear()

        # When a saga rebuilt behind the commit it sent places the order again: its reserve
        # and, once answered, its commit come again as new records
        await agent.put(line_cmd(ReserveStock, "o-7", 3, "SKU-7"), key=b"SKU-7")
        await agent.put(line_cmd(CommitStock, "o-7", 3, "SKU-7"), key=b"SKU-7")

        # Then the reserve is answered as reserved, nothing is held, and nothing sold again
        assert [e.eventType for e in sent] == ["StockReserved"]
        stock = get_stock("SKU-7")
        assert stock is not None
        assert (stock.available, stock.held, stock.sold) == (7, 0, 3)
        assert stock.conserved()

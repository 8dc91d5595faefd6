"""The inventory agent with Faust's test_context: a redelivered record (same offset) is not
applied again, a new duplicate (new offset) is absorbed by the rules, and a bad one is parked.
The commit that sells a hold records the sale once, whichever of the step's writes a crash
lost before the record came again (the tests choose the offsets and undo writes by hand)."""

from __future__ import annotations

from typing import Any

import pytest

import orderstream.worker.agents.inventory as inventory_agent_module
from orderstream.contracts.events import (
    CommitStock,
    CommitStockBatch,
    Event,
    ReserveStock,
    StockAdjusted,
    StockAdjustmentData,
    StockCommits,
    StockLine,
    encode,
    utcnow,
)
from orderstream.worker.agents.inventory import inventory_agent
from orderstream.worker.chaos import InjectedStoreError
from orderstream.worker.tables import committed_holds
from orderstream.worker.tables.committed_holds import committed_table
from orderstream.worker.tables.inventory import get_stock, stock_table
from orderstream.worker.tables.product_sales import get_sales, product_sales_table
from tests.unit.worker.conftest import Captured, capture_publish

pytestmark = pytest.mark.asyncio


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Captured:
    return capture_publish(monkeypatch, inventory_agent_module)


@pytest.fixture
def markers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Committed holds marked (settings.hold_markers: single commits at least once, or the stock
    writing through); the default, commits in batches and write-back, marks none."""
    monkeypatch.setattr(committed_holds, "ENABLED", True)


@pytest.fixture(params=[True, False], ids=["markers", "no-markers"])
def hold_markers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setattr(committed_holds, "ENABLED", request.param)
    return bool(request.param)


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


async def test_an_adjustment_on_stock_adjustments_joins_the_command_log_and_applies_there(
    sent: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stock changes by one input only, its command log (inventory-requests), so a replay
    after a crash meets the same records in the same order: what its write-back relies on."""
    test_topic = "<internal>"  # the topic of test_context's records
    monkeypatch.setattr(inventory_agent_module, "ADJUSTMENTS", test_topic)
    async with inventory_agent.test_context() as agent:
        # When a restock comes in on stock-adjustments
        await agent.put(restock(10, "SKU-R"), key=b"SKU-R")
    # Then it is relayed to its product's command log, unchanged, and not applied yet
    assert get_stock("SKU-R") is None
    assert [(role, key, e.eventId) for role, key, e, _ in sent.relayed] == [
        ("inventory_requests", "SKU-R", "adj-SKU-R")
    ]
    # When it comes in again from the command log, it is applied there
    monkeypatch.setattr(inventory_agent_module, "ADJUSTMENTS", "stock-adjustments")
    async with inventory_agent.test_context() as agent:
        await agent.put(restock(10, "SKU-R"), key=b"SKU-R")
    stock = get_stock("SKU-R")
    assert stock is not None and stock.available == 10
    assert len(sent.relayed) == 1


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

    monkeypatch.setattr("orderstream.worker.dead_letters.dead_letter", park)
    async with inventory_agent.test_context() as agent:
        await agent.put(b"{not json", key=b"SKU-3")
        await agent.put(restock(4, "SKU-3"), key=b"SKU-3")
        stock = get_stock("SKU-3")
        assert stock is not None and stock.available == 4
    assert [k for k, _ in parked] == ["invalid_json"]


async def test_a_reserve_re_sent_after_its_commit_holds_nothing_and_sells_nothing_again(
    sent: list[Event], markers: None
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


# --- sales: the commit that sells a hold records the sale, once -------------------------------


def commit(order: str, qty: int, sku: str, price: float | None = 2.5) -> bytes:
    return encode(
        CommitStock(
            eventId=f"CommitStock-{order}",
            timestamp=utcnow(),
            data=StockLine(orderId=order, productId=sku, quantity=qty, price=price),
        )
    )


def sales_of(sku: str) -> tuple[int, int, int]:
    """(units, revenue in cents, orders) of the product, all hours."""
    sales = get_sales(sku)
    hours = sales.hours if sales is not None else []
    return (
        sum(h.units for h in hours),
        sum(h.revenueCents for h in hours),
        sum(h.orders for h in hours),
    )


def stored(table: Any, key: bytes) -> bytes | None:
    return table.get(key)  # type: ignore[no-any-return]  (a write-back table's pending too)


def lose(table: Any, key: bytes, kept: bytes | None) -> None:
    """The table's value back to `kept`: the writes since were lost in a crash (the worker
    restored the table from a changelog that lacks them; a write-back table's values not
    stored yet are lost first)."""
    for layer in (getattr(table, "_dirty", {}), getattr(table, "_sent", {})):
        for values in layer.values():
            values.pop(key, None)
    if kept is None:
        table.data.pop(key, None)
    else:
        table.data[key] = kept


async def sold_once(agent: Any, sku: str, order: str = "o-1") -> tuple[bytes | None, ...]:
    """Given 10 of `sku`, 3 reserved for the order (offsets 0, 1) and committed at offset 2:
    return the stock, sales and marker as they were before the commit."""
    await agent.put(restock(10, sku), key=sku.encode())
    await agent.put(line_cmd(ReserveStock, order, 3, sku), key=sku.encode())
    before = (
        stored(stock_table, sku.encode()),
        stored(product_sales_table, sku.encode()),
        stored(committed_table, f"{sku}\x1f{order}".encode()),
    )
    assert agent.sent_offset == 2
    await agent.put(commit(order, 3, sku), key=sku.encode())
    assert sales_of(sku) == (3, 750, 1)
    return before


async def redeliver_commit(agent: Any, sku: str, offset: int = 2, order: str = "o-1") -> None:
    agent.sent_offset = offset
    await agent.put(commit(order, 3, sku), key=sku.encode())


def sold_units(sku: str) -> tuple[int, int, int]:
    stock = get_stock(sku)
    assert stock is not None and stock.conserved()
    return stock.available, stock.held, stock.sold


async def test_a_commit_that_sells_its_hold_records_the_sale(
    sent: list[Event], hold_markers: bool
) -> None:
    sku = f"SKU-S1-{hold_markers}"
    async with inventory_agent.test_context() as agent:
        await sold_once(agent, sku)

        # Then the sale counts the line's units, price and order, and the marker names it (or
        # no marker is written)
        assert sold_units(sku) == (7, 0, 3)
        marker = stored(committed_table, f"{sku}\x1fo-1".encode())
        assert marker == (b"sold@2" if hold_markers else None)
        sales = get_sales(sku)
        assert sales is not None and list(sales.applied.values()) == [2]


async def test_a_commit_without_a_price_counts_units_and_the_order(sent: list[Event]) -> None:
    async with inventory_agent.test_context() as agent:
        await agent.put(restock(10, "SKU-S2"), key=b"SKU-S2")
        await agent.put(line_cmd(ReserveStock, "o-1", 3, "SKU-S2"), key=b"SKU-S2")
        await agent.put(commit("o-1", 3, "SKU-S2", price=None), key=b"SKU-S2")

        assert sales_of("SKU-S2") == (3, 0, 1)


@pytest.mark.parametrize(
    ("lost", "marker"),
    [
        (("sales",), b"sold@2"),  # the stock says applied: the marker says this record sold
        (("stock",), b"sold@2"),  # the hold is back: sold again, the sale's watermark drops it
        (("stock", "sales"), b"sold@2"),
        (("stock", "sales", "marker"), b"sold@2"),
        (("marker",), b"1"),  # the sale was kept; which record sold is not known any more
    ],
    ids=lambda v: "+".join(v) if isinstance(v, tuple) else None,
)
async def test_a_commit_redelivered_after_a_crash_sells_and_counts_once(
    sent: list[Event], markers: None, lost: tuple[str, ...], marker: bytes
) -> None:
    sku = "SKU-L-" + "-".join(lost)
    keys = {"stock": sku.encode(), "sales": sku.encode(), "marker": f"{sku}\x1fo-1".encode()}
    tables = {"stock": stock_table, "sales": product_sales_table, "marker": committed_table}
    async with inventory_agent.test_context() as agent:
        before = dict(zip(("stock", "sales", "marker"), await sold_once(agent, sku), strict=True))
        # Given a crash that lost these writes of the commit's step, and kept the others
        for name in lost:
            lose(tables[name], keys[name], before[name])

        # When the commit is redelivered, twice
        await redeliver_commit(agent, sku)
        await redeliver_commit(agent, sku)

        # Then the hold is sold once and the sale counted once
        assert sold_units(sku) == (7, 0, 3)
        assert sales_of(sku) == (3, 750, 1)
        assert stored(committed_table, keys["marker"]) == marker


async def test_a_reserve_and_its_commit_redelivered_after_a_crash_that_kept_only_the_marker(
    sent: list[Event], markers: None
) -> None:
    """Seen in the chaos test: the worker was killed after the commit's marker reached the
    changelog but before the stock's writes of the reserve and the commit did. Both records
    came again; the reserve, taking the marker for a commit already applied, held nothing, the
    commit found no hold, and the confirmed order's unit was sold to another order."""
    sku = "SKU-L-reserve"
    async with inventory_agent.test_context() as agent:
        await agent.put(restock(10, sku), key=sku.encode())  # offset 0
        before_reserve = stored(stock_table, sku.encode())
        await agent.put(line_cmd(ReserveStock, "o-1", 3, sku), key=sku.encode())  # 1
        await agent.put(commit("o-1", 3, sku), key=sku.encode())  # 2: marker sold@2
        # Given a crash that lost the stock's writes of both steps and kept the marker
        lose(stock_table, sku.encode(), before_reserve)

        # When both records are redelivered
        agent.sent_offset = 1
        await agent.put(line_cmd(ReserveStock, "o-1", 3, sku), key=sku.encode())
        await agent.put(commit("o-1", 3, sku), key=sku.encode())

        # Then the hold is made and sold: the order's units leave the stock once
        assert sold_units(sku) == (7, 0, 3)
        assert sales_of(sku) == (3, 750, 1)
        assert stored(committed_table, f"{sku}\x1fo-1".encode()) == b"sold@2"


async def test_a_commit_re_sent_for_a_sold_hold_sells_and_counts_nothing(
    sent: list[Event], markers: None
) -> None:
    async with inventory_agent.test_context() as agent:
        await sold_once(agent, "SKU-S6")

        # When the saga sends the commit again (a new record, offset 3), another order holds 1
        # (offset 4: the stock's watermark passes 3), and offset 3 is redelivered
        await agent.put(commit("o-1", 3, "SKU-S6"), key=b"SKU-S6")
        await agent.put(line_cmd(ReserveStock, "o-2", 1, "SKU-S6"), key=b"SKU-S6")
        await redeliver_commit(agent, "SKU-S6", offset=3)

        # Then nothing is sold or counted again, and the marker still names the first commit
        assert sold_units("SKU-S6") == (6, 1, 3)
        assert sales_of("SKU-S6") == (3, 750, 1)
        assert stored(committed_table, b"SKU-S6\x1fo-1") == b"sold@2"


async def test_a_commit_that_finds_no_hold_marks_it_committed_and_counts_nothing(
    sent: list[Event], markers: None
) -> None:
    async with inventory_agent.test_context() as agent:
        await agent.put(restock(10, "SKU-S7"), key=b"SKU-S7")
        await agent.put(commit("o-9", 3, "SKU-S7"), key=b"SKU-S7")  # never reserved
        await redeliver_commit(agent, "SKU-S7", offset=1, order="o-9")

        assert sold_units("SKU-S7") == (10, 0, 0)
        assert sales_of("SKU-S7") == (0, 0, 0)
        assert stored(committed_table, b"SKU-S7\x1fo-9") == b"1"  # committed, sold by none known


async def test_a_commit_whose_step_failed_half_way_is_retried_and_counts_once(
    sent: list[Event], hold_markers: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a store that fails the first write of the sale's marker, or where no marker is
    # kept of the sale (after none, or some, of the step's other writes)
    failures = [InjectedStoreError("disk full")]
    name = "mark_committed" if hold_markers else "put_sales"
    write = getattr(inventory_agent_module, name)

    def failing_once(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return write(*args)

    monkeypatch.setattr(inventory_agent_module, name, failing_once)
    sku = f"SKU-S8-{hold_markers}"
    async with inventory_agent.test_context() as agent:
        await agent.put(restock(10, sku), key=sku.encode())
        await agent.put(line_cmd(ReserveStock, "o-1", 3, sku), key=sku.encode())
        # When the commit's step fails once and is retried in place
        await agent.put(commit("o-1", 3, sku), key=sku.encode())
        await agent.put(restock(1, "SKU-S8b"), key=b"SKU-S8b")  # taken once that step is done

        # Then it sold the hold and recorded the sale, once
        assert not failures
        assert sold_units(sku) == (7, 0, 3)
        assert sales_of(sku) == (3, 750, 1)


# --- batches of commits (orderstream/worker/commit_batches.py) ------------------------------


def batch(*lines: tuple[str, int, str]) -> bytes:
    """A CommitStockBatch of (order, quantity, product) commits, priced 2.5 each."""
    commits = [
        CommitStock(
            eventId=f"CommitStock-{order}-{sku}",
            timestamp=utcnow(),
            data=StockLine(orderId=order, productId=sku, quantity=qty, price=2.5),
        )
        for order, qty, sku in lines
    ]
    return encode(
        CommitStockBatch(
            eventId=f"{commits[0].eventId}+{len(commits) - 1}",
            timestamp=utcnow(),
            data=StockCommits(productId=commits[0].data.productId, commits=commits),
        )
    )


async def test_a_batch_sells_each_hold_once_and_records_each_sale(
    sent: Captured, markers: None
) -> None:
    lines = [("o-1", 3, "SKU-B1"), ("o-2", 1, "SKU-B2"), ("o-3", 2, "SKU-B1")]
    async with inventory_agent.test_context() as agent:
        # Given 10 of two products, held for three orders' lines
        for sku in ("SKU-B1", "SKU-B2"):
            await agent.put(restock(10, sku), key=sku.encode())
        for order, qty, sku in lines:
            await agent.put(line_cmd(ReserveStock, order, qty, sku), key=sku.encode())
        sent.clear()
        offset = agent.sent_offset

        # When one batch commits the three lines (two of them of one product)
        await agent.put(batch(*lines), key=b"SKU-B1")

        # Then each hold is sold, each sale counted, each marker names the batch's record
        assert sold_units("SKU-B1") == (5, 0, 5) and sold_units("SKU-B2") == (9, 0, 1)
        assert sales_of("SKU-B1") == (5, 1250, 2) and sales_of("SKU-B2") == (1, 250, 1)
        sold_by = f"sold@{offset}".encode()
        for order, _, sku in lines:
            assert stored(committed_table, f"{sku}\x1f{order}".encode()) == sold_by
        assert list(sent) == []

        # When the batch is redelivered (a crash before its offset commit), and sent again
        agent.sent_offset = offset
        await agent.put(batch(*lines), key=b"SKU-B1")
        await agent.put(batch(*lines), key=b"SKU-B1")

        # Then nothing is sold or counted again
        assert sold_units("SKU-B1") == (5, 0, 5) and sold_units("SKU-B2") == (9, 0, 1)
        assert sales_of("SKU-B1") == (5, 1250, 2) and sales_of("SKU-B2") == (1, 250, 1)


@pytest.mark.parametrize(
    ("marked", "lost"),
    [
        (True, ("sales",)),  # the marker tells the redelivered batch what it sold
        (True, ("stock",)),
        (True, ("stock", "sales")),
        # No markers: the sales are flushed before the stock, a crash never keeps the stock
        # without them (orderstream/faust_ext/producer.py)
        (False, ("stock",)),
        (False, ("stock", "sales")),
    ],
    ids=lambda v: "+".join(v) if isinstance(v, tuple) else ("markers" if v else "no-markers"),
)
async def test_a_batch_redelivered_after_a_crash_sells_and_counts_once(
    sent: Captured, monkeypatch: pytest.MonkeyPatch, marked: bool, lost: tuple[str, ...]
) -> None:
    monkeypatch.setattr(committed_holds, "ENABLED", marked)
    sku = f"SKU-BL-{marked}-" + "-".join(lost)
    lines = [("o-1", 3, sku), ("o-2", 2, sku)]
    tables = {"stock": stock_table, "sales": product_sales_table}
    async with inventory_agent.test_context() as agent:
        await agent.put(restock(10, sku), key=sku.encode())
        for order, qty, _ in lines:
            await agent.put(line_cmd(ReserveStock, order, qty, sku), key=sku.encode())
        before = {name: stored(table, sku.encode()) for name, table in tables.items()}
        offset = agent.sent_offset
        await agent.put(batch(*lines), key=sku.encode())
        # Given a crash that lost these writes of the batch's step, and kept the others
        for name in lost:
            lose(tables[name], sku.encode(), before[name])

        # When the batch is redelivered
        agent.sent_offset = offset
        await agent.put(batch(*lines), key=sku.encode())

        # Then both holds are sold once and both sales counted once
        assert sold_units(sku) == (5, 0, 5)
        assert sales_of(sku) == (5, 1250, 2)


async def test_a_commit_twice_in_one_batch_sells_and_counts_once(sent: Captured) -> None:
    """A saga step done again after a crash, or a reservation answered after the confirmation,
    sends an order's commit again: both can fall into one batch."""
    lines = [("o-1", 3, "SKU-B3"), ("o-2", 1, "SKU-B3"), ("o-1", 3, "SKU-B3")]
    async with inventory_agent.test_context() as agent:
        await agent.put(restock(10, "SKU-B3"), key=b"SKU-B3")
        for order, qty, sku in lines[:2]:
            await agent.put(line_cmd(ReserveStock, order, qty, sku), key=sku.encode())
        offset = agent.sent_offset

        await agent.put(batch(*lines), key=b"SKU-B3")
        agent.sent_offset = offset
        await agent.put(batch(*lines), key=b"SKU-B3")  # and redelivered

        assert sold_units("SKU-B3") == (6, 0, 4)
        assert sales_of("SKU-B3") == (4, 1000, 2)

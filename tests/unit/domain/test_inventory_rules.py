"""Inventory rules, Given / When / Then: reserve, release, commit and adjust one product's stock,
each safe to apply twice, all keeping restocked == available + held + sold."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderstream.contracts.events import (
    CommitStock,
    InventoryInput,
    ReleaseStock,
    ReserveStock,
    StockAdjusted,
    StockAdjustmentData,
    StockLine,
    StockRejected,
    StockReserved,
    event_id,
)
from orderstream.contracts.topics import route
from orderstream.domain import inventory
from orderstream.domain.common import Decision, RuleViolation
from orderstream.domain.inventory import RECENT_ADJUSTMENTS, ProductStock

T = datetime(2024, 8, 15, 10, 30, tzinfo=UTC)
P = "sku-1"


def reserve(order: str, qty: int, product: str = P) -> ReserveStock:
    return ReserveStock(
        eventId=f"rs-{order}-{product}",
        timestamp=T,
        data=StockLine(orderId=order, productId=product, quantity=qty),
    )


def release(order: str, qty: int = 1, product: str = P) -> ReleaseStock:
    return ReleaseStock(
        eventId=f"rl-{order}-{product}",
        timestamp=T,
        data=StockLine(orderId=order, productId=product, quantity=qty),
    )


def commit(order: str, qty: int = 1, product: str = P) -> CommitStock:
    return CommitStock(
        eventId=f"cm-{order}-{product}",
        timestamp=T,
        data=StockLine(orderId=order, productId=product, quantity=qty),
    )


def adjusted(adjustment: str, delta: int, product: str = P) -> StockAdjusted:
    return StockAdjusted(
        eventId=f"adj-{adjustment}",
        timestamp=T,
        data=StockAdjustmentData(
            adjustmentId=adjustment,
            productId=product,
            delta=delta,
            reason="restock" if delta > 0 else "correction",
        ),
    )


def stocked(qty: int) -> ProductStock:
    """Given: a product restocked with `qty` units."""
    state = inventory.apply(None, adjusted("initial", qty)).state
    assert state is not None
    return state


def run(stock: ProductStock | None, *cmds: InventoryInput) -> ProductStock | None:
    for cmd in cmds:
        decision = inventory.apply(stock, cmd)
        stock = decision.state or stock
    return stock


# --- adjust ----------------------------------------------------------------------------------


def test_first_restock_creates_the_product() -> None:
    decision = inventory.apply(None, adjusted("a-1", 10))

    assert decision.state == ProductStock(
        productId=P, available=10, restocked=10, recentAdjustments=["a-1"]
    )
    assert decision.emit == [] and not decision.duplicate


def test_restock_adds_to_what_is_there() -> None:
    stock = run(stocked(10), reserve("o-1", 4))

    after = inventory.apply(stock, adjusted("a-2", 5)).state

    assert after is not None
    assert (after.available, after.held, after.restocked) == (11, 4, 15)
    assert after.conserved()


def test_resent_adjustment_is_applied_once() -> None:
    stock = stocked(10)
    resent = msgspec.structs.replace(adjusted("initial", 10), eventId="another-envelope")

    decision = inventory.apply(stock, resent)

    assert decision == Decision(duplicate=True)


def test_correction_takes_stock_off_the_shelf() -> None:
    after = inventory.apply(stocked(10), adjusted("c-1", -10)).state

    assert after is not None
    assert (after.available, after.restocked) == (0, 0)
    assert after.conserved()


def test_correction_cannot_take_held_or_missing_stock() -> None:
    stock = run(stocked(10), reserve("o-1", 4))

    with pytest.raises(RuleViolation) as info:
        inventory.apply(stock, adjusted("c-1", -7))

    assert info.value.kind == "insufficient_stock"
    assert "6 available" in info.value.message


def test_adjustment_ids_are_remembered_for_a_bounded_window() -> None:
    stock: ProductStock | None = stocked(1)
    for n in range(RECENT_ADJUSTMENTS + 10):
        stock = run(stock, adjusted(f"a-{n}", 1))

    assert stock is not None
    assert len(stock.recentAdjustments) == RECENT_ADJUSTMENTS
    assert stock.recentAdjustments[-1] == f"a-{RECENT_ADJUSTMENTS + 9}"
    assert inventory.apply(stock, adjusted("a-10", 1)).duplicate  # still in the window


# --- reserve ---------------------------------------------------------------------------------


def test_reserve_holds_stock_and_answers_reserved() -> None:
    cmd = reserve("o-1", 3)

    decision = inventory.apply(stocked(10), cmd)

    assert decision.state is not None
    assert (decision.state.available, decision.state.held) == (7, 3)
    assert decision.state.holds == {"o-1": 3}
    [answer] = decision.emit
    assert isinstance(answer, StockReserved)
    assert answer.eventId == event_id("StockReserved", "o-1", P)
    assert answer.causationId == cmd.eventId
    assert (answer.data.orderId, answer.data.productId, answer.data.quantity) == ("o-1", P, 3)
    assert route(answer) == ("inventory_events", "o-1")  # back to the order's saga


def test_reserve_may_take_the_last_unit() -> None:
    decision = inventory.apply(stocked(3), reserve("o-1", 3))

    assert decision.state is not None and decision.state.available == 0
    assert isinstance(decision.emit[0], StockReserved)


@pytest.mark.parametrize(
    ("stock", "reason"),
    [
        (ProductStock(productId=P, available=2, restocked=2), "out_of_stock"),
        (ProductStock(productId=P), "out_of_stock"),  # in the catalog, sold out
        (None, "unknown_product"),
    ],
)
def test_reserve_more_than_available_is_rejected(stock: ProductStock | None, reason: str) -> None:
    cmd = reserve("o-1", 3)

    decision = inventory.apply(stock, cmd)

    assert decision.state is None  # nothing held
    [answer] = decision.emit
    assert isinstance(answer, StockRejected)
    assert answer.eventId == event_id("StockRejected", "o-1", P)
    assert answer.data.reason == reason
    assert answer.causationId == cmd.eventId
    assert route(answer) == ("inventory_events", "o-1")


def test_reserve_twice_holds_once_and_answers_twice() -> None:
    once = inventory.apply(stocked(10), reserve("o-1", 3))

    twice = inventory.apply(once.state, reserve("o-1", 3))

    assert twice.duplicate and twice.state is None
    assert [e.eventId for e in twice.emit] == [e.eventId for e in once.emit]


def test_reserve_for_another_order_is_not_a_duplicate() -> None:
    stock = run(stocked(10), reserve("o-1", 3), reserve("o-2", 3))

    assert stock is not None
    assert stock.holds == {"o-1": 3, "o-2": 3} and stock.available == 4


# --- release and commit ----------------------------------------------------------------------


def test_release_returns_the_hold_to_the_shelf() -> None:
    stock = run(stocked(10), reserve("o-1", 3), reserve("o-2", 2))

    decision = inventory.apply(stock, release("o-1"))

    assert decision.state is not None
    assert decision.state.holds == {"o-2": 2}
    assert (decision.state.available, decision.state.held, decision.state.sold) == (8, 2, 0)
    assert decision.emit == []


def test_commit_sells_the_hold() -> None:
    stock = run(stocked(10), reserve("o-1", 3))

    decision = inventory.apply(stock, commit("o-1"))

    assert decision.state is not None
    assert decision.state.holds == {}
    assert (decision.state.available, decision.state.held, decision.state.sold) == (7, 0, 3)
    assert decision.emit == []


@pytest.mark.parametrize("cmd", [release("o-1"), commit("o-1")], ids=["release", "commit"])
def test_release_or_commit_twice_changes_once(cmd: InventoryInput) -> None:
    once = run(stocked(10), reserve("o-1", 3), cmd)

    decision = inventory.apply(once, cmd)

    assert decision == Decision(duplicate=True)


@pytest.mark.parametrize("cmd", [release("o-9"), commit("o-9")], ids=["release", "commit"])
def test_release_or_commit_without_a_hold_changes_nothing(cmd: InventoryInput) -> None:
    assert inventory.apply(stocked(10), cmd) == Decision(duplicate=True)
    assert inventory.apply(None, cmd) == Decision(duplicate=True)


def test_release_after_commit_does_not_unsell() -> None:
    # A late StockReserved makes the saga release a committed order: it must find no hold.
    sold = run(stocked(10), reserve("o-1", 3), commit("o-1"))

    after = run(sold, release("o-1"))

    assert after == sold


def test_commit_after_release_does_not_sell() -> None:
    released = run(stocked(10), reserve("o-1", 3), release("o-1"))

    assert run(released, commit("o-1")) == released


def test_redelivered_reserve_is_answered_again_only_while_held() -> None:
    held = run(stocked(10), reserve("o-1", 3))
    released = run(held, release("o-1"))

    assert [e.eventId for e in inventory.redelivered(held, reserve("o-1", 3))] == [
        event_id("StockReserved", "o-1", P)
    ]
    assert inventory.redelivered(released, reserve("o-1", 3)) == []
    assert inventory.redelivered(held, release("o-1")) == []
    assert inventory.redelivered(None, reserve("o-1", 3)) == []


# --- the invariant ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "broken",
    [
        ProductStock(productId=P, available=5, restocked=4),
        ProductStock(productId=P, available=1, held=2, restocked=3),  # held but no hold
        ProductStock(productId=P, available=-1, restocked=-1),  # oversold
        ProductStock(productId=P, held=2, restocked=2, holds={"o-1": 2, "o-2": 0}),  # empty hold
    ],
    ids=["created", "held-without-hold", "negative", "zero-hold"],
)
def test_conserved_detects_lost_or_created_stock(broken: ProductStock) -> None:
    assert not broken.conserved()


commands = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "release", "commit", "restock", "correct"]),
        st.sampled_from(["o-1", "o-2", "o-3"]),
        st.integers(1, 4),
    ),
    max_size=25,
)


def to_command(kind: str, order: str, qty: int, n: int) -> InventoryInput:
    if kind == "reserve":
        return reserve(order, qty)
    if kind == "release":
        return release(order)
    if kind == "commit":
        return commit(order)
    return adjusted(f"adj-{n}", qty if kind == "restock" else -qty)


def apply_all(stock: ProductStock, cmds: list[InventoryInput], times: int) -> ProductStock:
    for cmd in cmds:
        for _ in range(times):
            # A correction beyond what is available is refused and changes nothing.
            with suppress(RuleViolation):
                stock = inventory.apply(stock, cmd).state or stock
            assert stock.conserved(), cmd
    return stock


@settings(max_examples=150, deadline=None)
@given(start=st.integers(0, 8), script=commands)
def test_any_command_sequence_conserves_stock_and_applies_twice_as_once(
    start: int,
    script: list[tuple[str, str, int]],
) -> None:
    cmds = [to_command(kind, order, qty, n) for n, (kind, order, qty) in enumerate(script)]
    initial = stocked(start) if start else ProductStock(productId=P)

    once = apply_all(initial, cmds, times=1)
    twice = apply_all(initial, cmds, times=2)

    assert twice == once


def test_a_reserve_for_an_order_whose_hold_was_committed_is_answered_and_holds_nothing() -> None:
    stock = stocked(5)
    decision = inventory.apply(stock, reserve("o-9", 2), committed=True)
    assert decision.state is None and decision.duplicate
    assert [e.eventType for e in decision.emit] == ["StockReserved"]

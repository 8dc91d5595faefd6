"""The simulated order service: enough stock gives every order one outcome; short stock leaves
part of the demand unserved, so orders must be rejected and overselling would show."""

from __future__ import annotations

import pytest

from devtools.simulator import Scenario, build_scenario


def _confirmable_served(scenario: Scenario) -> tuple[int, int]:
    """Serve the orders that would be confirmed, in order, from the restocks: (served, asked)."""
    shelf = dict(scenario.restocks)
    served = asked = 0
    for order in scenario.orders:
        if order.expected != "CONFIRMED":
            continue
        asked += 1
        if all(shelf.get(p, 0) >= q for p, q in order.items):
            served += 1
            for p, q in order.items:
                shelf[p] -= q
    return served, asked


def test_enough_stock_gives_every_order_exactly_one_outcome() -> None:
    scenario = build_scenario("r", 2000)

    assert not scenario.short_stock
    assert all(o.allowed == {o.expected} for o in scenario.orders)
    assert all(scenario.restocks[p] == scenario.demand[p] + 10 for p in scenario.restocks)
    assert _confirmable_served(scenario)[0] == scenario.expected["CONFIRMED"]


def test_short_stock_restocks_a_share_of_the_demand() -> None:
    # Given stock for 40% of what the orders ask for
    scenario = build_scenario("r", 2000, stock_ratio=0.4)
    # Then each product has that share (at least one unit), and many orders cannot be served
    assert scenario.short_stock
    for product, units in scenario.restocks.items():
        assert units == max(1, int(scenario.demand[product] * 0.4)), product
    served, asked = _confirmable_served(scenario)
    assert served < 0.6 * asked
    # and an order that would be confirmed (or cancelled by payment) may be rejected instead
    for order in scenario.orders:
        if order.expected == "REJECTED":
            assert order.allowed == {"REJECTED"}
        else:
            assert order.allowed == {order.expected, "REJECTED"}


def test_the_same_seed_gives_the_same_orders_whatever_the_stock() -> None:
    full, short = build_scenario("r", 500), build_scenario("r", 500, stock_ratio=0.5)

    assert [o.items for o in full.orders] == [o.items for o in short.orders]
    assert full.expected == short.expected


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5])
def test_a_ratio_outside_0_to_1_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="stock_ratio must be in"):
        build_scenario("r", 10, stock_ratio=ratio)


def test_short_stock_accepts_a_rejection_only_for_want_of_stock() -> None:
    order = next(
        o for o in build_scenario("r", 100, stock_ratio=0.5).orders if o.expected == "CONFIRMED"
    )

    assert order.accepts("CONFIRMED", None)
    assert order.accepts("REJECTED", "out_of_stock: SKU-0003")
    assert not order.accepts("REJECTED", "timeout: inventory did not answer")
    assert not order.accepts("CANCELLED", "payment_failed: amount_over_limit")
    full = next(o for o in build_scenario("r", 100).orders if o.expected == "CONFIRMED")
    assert not full.accepts("REJECTED", "out_of_stock: SKU-0003")

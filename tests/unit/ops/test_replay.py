"""The replay's fold and diff, without Kafka: the same outcomes give the same views, and every
difference with the live read models is named by model, key and field."""

from __future__ import annotations

from orderstream.domain.projections import HISTORY_LIMIT, Origin
from orderstream.domain.state import replace
from orderstream.ops.replay import ReadModels, diff, summary
from tests.unit.domain.test_projection_rules import TOPIC, commit, commits, outcome


def models(*orders: str) -> ReadModels:
    """The read models after each order's outcome and its commits (one partition each)."""
    rebuilt = ReadModels()
    offset = 0
    for n, order in enumerate(orders):
        ev = outcome(order)
        rebuilt.apply(ev, Origin(partition=0, offset=n), 0)
        for c in commits(ev):
            rebuilt.apply_commits([c], TOPIC, offset)
            offset += 1
    return rebuilt


def test_the_same_log_gives_no_difference() -> None:
    assert diff(models("o-1", "o-2").views(), models("o-1", "o-2").views()) == []


def test_a_saga_repeat_is_applied_once() -> None:
    twice = models("o-1", "o-1")

    assert twice.customers["c-1#0"].placed == 1 and twice.sales["p-1"].hours[0].units == 2


def test_the_first_commit_of_a_line_sells_it_and_a_re_sent_one_does_not() -> None:
    rebuilt = models("o-1")
    before = rebuilt.sales["p-1"]

    rebuilt.apply_commits([commit("o-1", "p-1")], TOPIC, 99)  # the saga sent it again, later

    assert rebuilt.sales["p-1"] == before
    assert (before.hours[0].units, before.hours[0].revenueCents) == (2, 2000)


def test_watermarks_are_not_compared() -> None:
    live, rebuilt = models("o-1"), models("o-1")
    live.customers["c-1#0"] = replace(live.customers["c-1#0"], applied={"p0": 99})

    assert diff(live.views(), rebuilt.views()) == []


def test_a_live_model_behind_the_log_is_named_field_by_field() -> None:
    found = diff(models("o-1").views(), models("o-1", "o-2").views())

    assert "customer_orders c-1: totals.orders: live 1, rebuilt 2" in found
    assert "product_sales p-1: hours[0].units: live 2, rebuilt 4" in found


def test_a_listed_summary_missing_live_is_named() -> None:
    live, rebuilt = models("o-1", "o-2"), models("o-1", "o-2")
    del live.settled["o-2"]  # o-2's summary (live: its saga state)

    found = diff(live.views(), rebuilt.views())

    assert any(line.startswith("customer_orders c-1: orders") for line in found), found


def test_the_history_keeps_the_newest_listed_summaries_only() -> None:
    rebuilt = models(*[f"o-{n}" for n in range(HISTORY_LIMIT + 3)])

    assert len(rebuilt.settled) == HISTORY_LIMIT
    assert rebuilt.customers["c-1#0"].placed == HISTORY_LIMIT + 3


def test_a_key_only_live_is_named() -> None:
    assert diff(models("o-1").views(), ReadModels().views())[0] == "customer_orders c-1: only live"


def test_the_summary_counts_customers_not_their_parts() -> None:
    rebuilt = ReadModels()
    for n in range(4):  # one customer's orders in four saga partitions
        rebuilt.apply(outcome(f"o-{n}"), Origin(partition=n, offset=0), n)

    assert summary(rebuilt).startswith("4 orders, 1 customers, ")

"""Admission control: new orders stop being fetched at the open-saga cap, and resume below it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from faust.types import TP

from app import admission
from app.application import topic_name

ORDERS = topic_name("orders")
P0, P1, OTHER = TP(ORDERS, 0), TP(ORDERS, 1), TP("inventory-events", 0)


class _Consumer:
    def __init__(self, assigned: set[Any]) -> None:
        self.assigned = assigned
        self.paused: set[Any] = set()

    def assignment(self) -> set[Any]:
        return self.assigned

    def pause_partitions(self, tps: set[Any]) -> None:
        self.paused |= tps

    def resume_partitions(self, tps: set[Any]) -> None:
        self.paused -= tps


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Consumer]:
    fake = _Consumer({P0, P1, OTHER})
    monkeypatch.setattr(admission, "app", type("App", (), {"consumer": fake}))
    monkeypatch.setattr(admission.settings, "saga_max_open", 100)
    admission.paused().clear()
    yield fake
    admission.paused().clear()


def test_order_partitions_pause_at_the_cap_and_resume_below_80_percent(consumer: _Consumer) -> None:
    admission.update(99)
    assert consumer.paused == set()
    admission.update(100)
    assert consumer.paused == {P0, P1}  # only the order topic: replies keep flowing
    admission.update(81)
    assert consumer.paused == {P0, P1}  # hysteresis: no flapping at the cap
    admission.update(79)
    assert consumer.paused == set()
    assert admission.paused() == set()


def test_reconcile_follows_a_rebalance(consumer: _Consumer) -> None:
    admission.update(150)
    consumer.assigned = {P1, TP(ORDERS, 2)}  # P0 went to another worker, partition 2 came
    consumer.paused.discard(P0)  # Faust forgets paused partitions it no longer has
    admission.update(150, reconcile=True)
    assert consumer.paused == {P1, TP(ORDERS, 2)}
    admission.update(10)
    assert consumer.paused == set()


def test_a_cap_of_zero_never_pauses(consumer: _Consumer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission.settings, "saga_max_open", 0)
    admission.update(10**6, reconcile=True)
    assert consumer.paused == set()

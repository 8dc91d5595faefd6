"""The tables' store (orderstream/faust_ext/store.py): a full garbage collection only at a
rebalance that dropped a database."""

from __future__ import annotations

import gc
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from faust.stores import by_url
from faust.types import TP

from orderstream.faust_ext.store import Store
from orderstream.settings import Settings


def _store(*partitions: int) -> Any:
    """What `revoke_partitions` uses of a store: its open databases and its logger."""
    return SimpleNamespace(
        _dbs={p: object() for p in partitions}, logger=logging.getLogger("test-store")
    )


TABLE = SimpleNamespace(changelog_topic=SimpleNamespace(topics={"orders-changelog"}))


@pytest.fixture
def collections(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append(1) or 0)
    return calls


def test_a_rebalance_that_drops_no_database_collects_nothing(collections: list[int]) -> None:
    store = _store(0, 1)
    # nothing revoked (a first assignment), or only partitions of another table's changelog
    Store.revoke_partitions(store, TABLE, set())
    Store.revoke_partitions(store, TABLE, {TP("inventory-changelog", 0)})
    assert collections == []
    assert set(store._dbs) == {0, 1}


def test_a_dropped_database_is_collected_once(collections: list[int]) -> None:
    store = _store(0, 1, 2)
    Store.revoke_partitions(store, TABLE, {TP("orders-changelog", 0), TP("orders-changelog", 2)})
    assert collections == [1]
    assert set(store._dbs) == {1}


def test_the_workers_tables_use_it_by_default() -> None:
    # (the unit tests' environment sets memory://)
    assert by_url(Settings.model_fields["store"].default) is Store

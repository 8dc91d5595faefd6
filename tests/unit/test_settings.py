"""Which agents a worker runs (ORDERSTREAM_AGENTS)."""

from __future__ import annotations

import pytest

from app.application import enabled_agents

AGENTS = ["inventory", "payment", "saga"]


def test_all_agents_by_default() -> None:
    assert enabled_agents(AGENTS, "") == AGENTS


def test_a_subset_by_name() -> None:
    assert enabled_agents(AGENTS, " inventory, saga ") == ["inventory", "saga"]


def test_an_unknown_agent_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match=r"unknown agents \['sagas'\]"):
        enabled_agents(AGENTS, "inventory,sagas")


def test_rocksdb_memory_is_bounded_per_database() -> None:
    from app.application import rocksdb_options
    from app.settings import Settings

    options = rocksdb_options(Settings(rocksdb_write_buffer_mb=2, rocksdb_block_cache_mb=3))

    assert options == {
        "write_buffer_size": 2 * 1024 * 1024,
        "max_write_buffer_number": 3,
        "block_cache_size": 3 * 1024 * 1024,
    }


def test_every_table_opens_its_stores_with_the_bounded_options() -> None:
    from app.application import app, rocksdb_options, settings
    from tables import (  # noqa: F401  (a table registers on import)
        customer_orders,
        inventory,
        order_summaries,
        orders,
        payments,
        product_sales,
    )

    assert len(app.tables) == 6
    for table in app.tables.values():
        assert table.options == rocksdb_options(settings), table.name


def test_the_producer_fills_batches_of_the_configured_size() -> None:
    from app.application import app, settings

    assert settings.producer_batch_kb >= 64  # a table record of several KB must not fill one
    assert app.conf.producer_max_batch_size == settings.producer_batch_kb * 1024

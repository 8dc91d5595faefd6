"""Which agents a worker runs (ORDERSTREAM_AGENTS), the memory it gives RocksDB, and the admin
token a worker needs before it serves HTTP beyond this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orderstream.worker.app import enabled_agents

AGENTS = ["inventory", "payment", "saga"]
ROOT = Path(__file__).resolve().parents[2]


def test_all_agents_by_default() -> None:
    assert enabled_agents(AGENTS, "") == AGENTS


def test_a_subset_by_name() -> None:
    assert enabled_agents(AGENTS, " inventory, saga ") == ["inventory", "saga"]


def test_an_unknown_agent_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match=r"unknown agents \['sagas'\]"):
        enabled_agents(AGENTS, "inventory,sagas")


def test_rocksdb_memory_is_bounded_per_database() -> None:
    from orderstream.settings import Settings
    from orderstream.worker.app import rocksdb_options

    options = rocksdb_options(Settings(rocksdb_write_buffer_mb=2, rocksdb_block_cache_mb=3))

    assert options == {
        "write_buffer_size": 2 * 1024 * 1024,
        "max_write_buffer_number": 3,
        "block_cache_size": 3 * 1024 * 1024,
    }


def _worker_tables() -> dict[str, Any]:
    """Every table of the worker, by name (a table registers on import)."""
    from orderstream.worker.app import app
    from orderstream.worker.tables import (  # noqa: F401  (a table registers on import)
        committed_holds,
        customer_orders,
        inventory,
        orders,
        payments,
        product_sales,
    )

    return dict(app.tables.items())


def test_every_table_opens_its_stores_with_the_bounded_options() -> None:
    from orderstream.worker.app import rocksdb_options, settings

    tables = _worker_tables()
    assert len(tables) == 6
    for table in tables.values():
        assert table.options == rocksdb_options(settings), table.name


def test_at_least_once_the_tables_whose_replay_decides_the_same_write_back() -> None:
    from orderstream.faust_ext import write_back, write_through
    from orderstream.worker.app import settings

    tables = _worker_tables()
    assert not settings.exactly_once and settings.table_write_back is None
    kinds = {
        name: "back" if isinstance(t, write_back.Table) else type(t).__module__
        for name, t in tables.items()
    }
    through = write_through.__name__  # each write's record sent without Faust's future
    assert kinds == {
        "customer_orders": "back",
        "product_sales": "back",
        "inventory": "back",  # changed by its command log only
        "orders": through,  # the saga's inputs interleave differently in a replay
        "committed_holds": through,
        "payments": through,
    }


def test_the_sales_flush_before_the_stock_and_no_hold_is_marked_by_default() -> None:
    """The default (commits in batches at least once, stock and sales written back) needs no
    committed-hold markers; every other combination keeps them."""
    from orderstream.settings import Settings
    from orderstream.worker.app import settings

    tables = _worker_tables()
    assert [n for n, t in tables.items() if getattr(t, "flush_first", False)] == ["product_sales"]
    assert settings.hold_markers is False
    assert Settings(commit_batches=False).hold_markers
    assert Settings(processing_guarantee="exactly_once").hold_markers
    assert Settings(table_write_back=False).hold_markers
    assert not Settings(table_write_back=True).hold_markers


def test_the_producer_fills_batches_of_the_configured_size() -> None:
    from orderstream.worker.app import app, settings

    assert settings.producer_batch_kb >= 64  # a table record of several KB must not fill one
    assert app.conf.producer_max_batch_size == settings.producer_batch_kb * 1024


# --- the admin token on an exposed web server -------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "::1"])
def test_the_default_token_is_fine_on_loopback(host: str) -> None:
    from orderstream.settings import Settings

    assert Settings(web_host=host).admin_token.get_secret_value() == "change-me"


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.1.2.3", "worker-1.orderstream-workers"])
@pytest.mark.parametrize("token", ["change-me", "", "   "])
def test_an_exposed_web_server_refuses_the_default_or_an_empty_token(host: str, token: str) -> None:
    from orderstream.errors import ConfigError
    from orderstream.settings import Settings

    # Given a web server others can reach, When the admin token is the default or empty
    with pytest.raises(ConfigError) as info:
        Settings(web_host=host, admin_token=token)
    # Then the error names the variables and the fix
    message = str(info.value)
    assert "ORDERSTREAM_WEB_HOST=" in message
    assert "set ORDERSTREAM_ADMIN_TOKEN to a secret" in message
    assert "ORDERSTREAM_WEB_HOST=127.0.0.1" in message


def test_an_exposed_web_server_starts_with_a_real_token() -> None:
    from orderstream.settings import Settings

    settings = Settings(web_host="0.0.0.0", admin_token="9f86d081884c7d659a2feaa0c55ad015")
    assert settings.web_host == "0.0.0.0"


def test_the_check_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from orderstream.errors import ConfigError
    from orderstream.settings import Settings

    monkeypatch.setenv("ORDERSTREAM_WEB_HOST", "0.0.0.0")
    monkeypatch.delenv("ORDERSTREAM_ADMIN_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="ORDERSTREAM_ADMIN_TOKEN is the default 'change-me'"):
        Settings()
    monkeypatch.setenv("ORDERSTREAM_ADMIN_TOKEN", "")
    with pytest.raises(ConfigError, match="ORDERSTREAM_ADMIN_TOKEN is empty"):
        Settings()
    monkeypatch.setenv("ORDERSTREAM_ADMIN_TOKEN", "s3cret-from-a-secret-store")
    assert Settings().admin_token.get_secret_value() == "s3cret-from-a-secret-store"


def test_the_cli_reports_the_missing_token_as_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orderstream.ops.cli import main
    from orderstream.settings import get_settings

    monkeypatch.setenv("ORDERSTREAM_WEB_HOST", "0.0.0.0")
    monkeypatch.delenv("ORDERSTREAM_ADMIN_TOKEN", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["topics"]) == 2
    finally:
        get_settings.cache_clear()
    assert "set ORDERSTREAM_ADMIN_TOKEN to a secret" in capsys.readouterr().err


def test_a_worker_bound_to_every_address_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    # A real `faust -A orderstream.worker.app worker` (it stops while importing the app: no broker
    # needed)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSTREAM_")}
    env.update(ORDERSTREAM_WEB_HOST="0.0.0.0", ORDERSTREAM_DATADIR=str(tmp_path / "data"))
    proc = subprocess.run(
        [sys.executable, "-m", "faust", "-A", "orderstream.worker.app", "worker", "-l", "info"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "ORDERSTREAM_WEB_HOST=0.0.0.0 serves the admin endpoints" in proc.stderr
    assert not (tmp_path / "data").exists()

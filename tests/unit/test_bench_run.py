"""The benchmark's command line: modes, overrides and the scenario list."""

from __future__ import annotations

import pytest

from bench.config import SCENARIOS, BenchConfig
from bench.errors import BenchError
from bench.raw_loop import ChainShape
from bench.run import build_parser, config_from
from bench.throughput import ThroughputRun


def parse(*argv: str) -> BenchConfig:
    return config_from(build_parser().parse_args(list(argv)))


def test_default_is_the_full_session() -> None:
    config = parse()
    assert (config.orders, config.repeat, config.recovery_keys) == (100_000, 3, 1_000_000)
    assert config.only == SCENARIOS and not config.quick


def test_quick_mode_with_an_explicit_override() -> None:
    config = parse("--quick", "--orders", "800", "--only", "throughput, raw")
    assert config.quick and config.repeat == 1 and config.orders == 800
    assert config.warmup_orders == 800  # never more warm-up than the run itself
    assert config.only == ("throughput", "raw")
    assert config.runs("raw") and not config.runs("peer")


def test_worker_environment_passes_through() -> None:
    config = parse("--worker-env", "ORDERSTREAM_LOG_LEVEL=warning", "--worker-env", "A=b=c")
    assert config.worker_env == {"ORDERSTREAM_LOG_LEVEL": "warning", "A": "b=c"}


def test_unknown_scenario_names_the_choices() -> None:
    with pytest.raises(BenchError, match="pick from throughput"):
        parse("--only", "throughput,speed")


def test_raw_chain_reads_and_writes_as_much_per_order_as_the_worker() -> None:
    run = ThroughputRun(
        orders=100,
        elapsed_s=1.0,
        orders_per_s=100.0,
        messages_per_s=1900.0,
        consumed_per_order=6.4,
        produced_per_order=12.7,
        per_topic={},
        consumed_roles=[],
        peak_rss_mb=100.0,
        cpu_s=1.0,
        problems=[],
    )
    shape = ChainShape.like(run)
    assert shape.hops == 6
    assert shape.hops * (1 + shape.side_per_hop) == pytest.approx(12.7)

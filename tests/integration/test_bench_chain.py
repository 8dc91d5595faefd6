"""The benchmark's two framework-free yardsticks on the real broker: the raw aiokafka loop and the
same chain through Faust with no application code. Each must carry every order through every hop
and write exactly its share of side records, or the ratios the benchmark prints mean nothing."""

from __future__ import annotations

import math

import pytest

from app.broker import LocalBroker
from bench import raw_loop
from bench.config import BenchConfig

ORDERS = 300
SHAPE = raw_loop.ChainShape(hops=3, side_per_hop=1.5)
CLIENTS: tuple[raw_loop.Client, ...] = ("raw", "faust")


@pytest.mark.parametrize("client", CLIENTS)
def test_chain_moves_every_order_through_every_hop(
    kafka: LocalBroker, client: raw_loop.Client
) -> None:
    run = raw_loop.measure(kafka.bootstrap, BenchConfig(partitions=2), ORDERS, SHAPE, client)

    read = ORDERS * SHAPE.hops
    forwarded = ORDERS * SHAPE.hops  # hop i -> hop i+1, the last hop included
    side = math.floor(ORDERS * SHAPE.hops * SHAPE.side_per_hop)
    assert run.records == read + forwarded + side
    assert run.orders == ORDERS
    assert run.orders_per_s > 0 and run.elapsed_s > 0
    assert run.cpu_s > 0 and run.peak_rss_mb > 0

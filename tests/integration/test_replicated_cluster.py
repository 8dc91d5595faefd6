"""A replicated cluster under broker crashes: three KRaft nodes, every topic with 3 copies and
min.insync.replicas 2, workers producing with acks=all. The node leading most order and
changelog partitions is killed -9 while orders flow, comes back, then the next leader dies:
nothing is lost or doubled and the workers carry on unattended (nobody restarts them)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from devtools import demo
from devtools.local_cluster import LocalCluster
from devtools.verify import consumer_lag
from orderstream.contracts.topics import TABLES, changelog_topic, registry
from orderstream.settings import Settings
from tests.integration.conftest import RUN_DIR, Stack, _stacks, free_ports
from tests.integration.test_pipeline import _assert_run_correct

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

NODES = 3
ORDERS = 2400
RATE = 40.0  # orders/s offered: a minute of feed, time for two failovers under load
# Past broker.session.timeout.ms (9 s): the dead node is fenced and its leaders have moved.
OUTAGE_S = 12.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Three combined broker+controller nodes on free ports, data under var/test-run."""
    ports = free_ports(2 * NODES)
    settings = Settings(
        local_broker_dir=RUN_DIR / "cluster",
        local_broker_heap="512m",
        local_broker_start_timeout_s=120.0,
    )
    local = LocalCluster(settings, NODES, list(zip(ports[::2], ports[1::2], strict=True)))
    local.start()
    try:
        yield local
    finally:
        for node in local.nodes:  # the data goes: no clean shutdown (it took ~12 s)
            node.kill()
            shutil.rmtree(node.data_dir, ignore_errors=True)


@pytest.fixture
def cluster_stack(
    cluster: LocalCluster, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Stack]]:
    """Isolated pipelines on the cluster: every node in the workers' bootstrap list, and
    topics with three copies of which two must acknowledge each write."""
    # Stack takes ORDERSTREAM_BROKER from `.bootstrap`: kafka://h:p1,h:p2,h:p3 (Faust and the
    # plain clients both read that list).
    stacks = _stacks(cluster, request)  # type: ignore[arg-type]
    make = next(stacks)

    def on_cluster(**overrides: object) -> Stack:
        return make(replication_factor=NODES, min_insync_replicas=2, **overrides)

    yield on_cluster
    next(stacks, None)  # stops the workers


async def _busiest_leader(cluster: LocalCluster, topics: list[str], spare: set[int]) -> int:
    """The node leading most partitions of `topics`, among the nodes not in `spare`."""
    states = await cluster.partitions(topics)
    led = Counter(s.leader for s in states.values() if s.leader >= 0 and s.leader not in spare)
    return led.most_common(1)[0][0]


async def _settled_past(settled: Counter[str], count: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while settled.total() < count:
        assert time.monotonic() < deadline, f"only {settled.total()} orders settled"
        await asyncio.sleep(0.2)


def test_two_leader_crashes_under_load_lose_nothing(
    cluster_stack: Callable[..., Stack], cluster: LocalCluster
) -> None:
    # Given two workers on a 3-node cluster, every topic with 3 in-sync copies
    s = cluster_stack()
    workers = s.workers("w1", "w2")
    topics = registry(s.settings)
    watched = [topics["orders"].name, *(changelog_topic(s.settings, t) for t in TABLES)]
    everything = [spec.name for spec in topics.values()] + ["__consumer_offsets"]
    settled: Counter[str] = Counter()
    kills: list[str] = []

    async def crash(victim: int) -> None:
        before = settled.total()
        await asyncio.to_thread(cluster.kill, victim)
        await asyncio.sleep(OUTAGE_S)
        kills.append(f"node {victim} at {before} settled, {settled.total()} {OUTAGE_S:.0f}s later")
        assert before < ORDERS, "the crash must land while orders are still flowing"

    async def failovers() -> None:
        await _settled_past(settled, 150)
        # When the node leading most order and changelog partitions is killed -9
        first = await _busiest_leader(cluster, watched, spare=set())
        await crash(first)
        # and comes back, and once all copies are in sync again, the next busiest leader dies
        await asyncio.to_thread(cluster.restart, first)
        await cluster.wait_in_sync(everything, timeout_s=120)
        second = await _busiest_leader(cluster, watched, spare={first})
        await crash(second)
        # (it stays down: two nodes of three keep accepting acks=all writes)

    async def scenario() -> demo.DemoResult:
        run = asyncio.create_task(
            demo.run(s.settings, ORDERS, rate=RATE, quiet=True, timeout_s=400, totals=settled)
        )
        try:
            await failovers()
        except BaseException:
            run.cancel()
            raise
        return await run

    started = time.monotonic()
    result = asyncio.run(scenario())
    settled_s = time.monotonic() - started

    # Then every order has exactly one terminal outcome, stock adds up, nothing is charged twice
    _assert_run_correct(result)
    assert all(len(c) == 1 for c in result.report.charges.values())
    assert result.report.dead_letters == 0
    # And the workers recovered by themselves: still the same processes, lag back to zero
    assert all(w.running for w in workers), "the workers must survive without a restart"
    assert len(kills) == 2
    lag: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lag = asyncio.run(consumer_lag(s.settings))
        if sum(lag.values()) == 0:
            break
        time.sleep(1)
    assert sum(lag.values()) == 0, f"lag did not drain: {lag}"
    print(f"\nreplicated cluster: {ORDERS} orders settled in {settled_s:.0f}s; kills: {kills}")

"""Scenario 2: the raw-client ceiling (bench/raw_client.py) moving as many records per order,
through as many hops, as the worker did in scenario 1."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass

from bench import kafka_io, procstat
from bench.config import REPO, BenchConfig
from bench.raw_client import hop_topic, side_topic
from bench.stack import RunStack
from bench.throughput import MIN_RATE, ThroughputRun, scenario_for


@dataclass(frozen=True)
class ChainShape:
    """Hops per order (records read) and side records per hop (extra records written)."""

    hops: int
    side_per_hop: float

    @classmethod
    def like(cls, run: ThroughputRun) -> ChainShape:
        """The chain that reads and writes as many records per order as the worker did."""
        hops = max(1, round(run.consumed_per_order))
        return cls(hops, max(0.0, run.produced_per_order - hops) / hops)


@dataclass(frozen=True)
class RawRun:
    orders: int
    elapsed_s: float
    orders_per_s: float
    messages_per_s: float
    peak_rss_mb: float
    cpu_s: float


def measure(bootstrap: str, config: BenchConfig, n_orders: int, shape: ChainShape) -> RawRun:
    stack = RunStack(bootstrap, "raw", config.partitions, {})
    prefix = stack.settings.topic_prefix
    hops = [hop_topic(prefix, i) for i in range(shape.hops + 1)]
    written = [*hops[1:], side_topic(prefix)]
    orders = scenario_for(stack, n_orders).orders
    asyncio.run(kafka_io.create_topics(bootstrap, [*hops, side_topic(prefix)], config.partitions))
    asyncio.run(
        kafka_io.preload(bootstrap, hops[0], ((o.order_id.encode(), o.payload) for o in orders))
    )
    log = (stack.dir / "raw_client.log").open("wb")
    command = [sys.executable, "-m", "bench.raw_client", "--bootstrap", bootstrap]
    command += ["--prefix", prefix, "--hops", str(shape.hops)]
    command += ["--side-per-hop", str(shape.side_per_hop), "--group", f"bench-{stack.name}"]
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    cpu = procstat.CpuTrace(proc.pid)
    try:
        asyncio.run(
            kafka_io.wait_for_records(
                bootstrap,
                hops[-1],
                n_orders,
                timeout_s=60 + n_orders / MIN_RATE,
                alive=lambda: proc.poll() is None,
                on_poll=cpu.sample,
                label=stack.name,
            )
        )
        used = procstat.usage(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    return asyncio.run(_result(bootstrap, n_orders, shape, written, hops[-1], used, cpu))


async def _result(
    bootstrap: str,
    n: int,
    shape: ChainShape,
    written: list[str],
    last_hop: str,
    used: procstat.Usage,
    cpu: procstat.CpuTrace,
) -> RawRun:
    async with kafka_io.probe(bootstrap) as consumer:
        produced = sum((await kafka_io.end_offsets(consumer, written)).values())
        first = await kafka_io.edge_timestamps(consumer, written)
        last = await kafka_io.edge_timestamps(consumer, [last_hop])
    assert first is not None and last is not None
    elapsed = last[1] - first[0]
    return RawRun(
        orders=n,
        elapsed_s=elapsed,
        orders_per_s=n / elapsed,
        messages_per_s=(n * shape.hops + produced) / elapsed,
        peak_rss_mb=used.peak_rss_mb,
        cpu_s=cpu.between(first[0], last[1]),
    )

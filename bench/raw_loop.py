"""Scenario 2: the raw-client ceiling (bench/raw_client.py) moving as many records per order,
through as many hops, as the worker did in scenario 1; and the same chain through Faust with no
application code (bench/faust_client.py), the floor that splits the gap between the worker and
the raw client into Faust's share and orderstream's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Literal

from bench import kafka_io, procstat
from bench.config import REPO, BenchConfig
from bench.raw_client import hop_topic, side_topic
from bench.stack import RunStack, free_ports
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


Client = Literal["raw", "faust"]


@dataclass(frozen=True)
class RawRun:
    orders: int
    records: int  # read and written
    elapsed_s: float
    orders_per_s: float
    messages_per_s: float
    peak_rss_mb: float
    cpu_s: float


def measure(
    bootstrap: str, config: BenchConfig, n_orders: int, shape: ChainShape, client: Client = "raw"
) -> RawRun:
    """Preload the orders into the first hop, start the client, time it to the last hop."""
    stack = RunStack(bootstrap, client, config.partitions, {})
    prefix = stack.settings.topic_prefix
    hops = [hop_topic(prefix, i) for i in range(shape.hops + 1)]
    orders = scenario_for(stack, n_orders).orders
    asyncio.run(kafka_io.create_topics(bootstrap, [*hops, side_topic(prefix)], config.partitions))
    asyncio.run(
        kafka_io.preload(bootstrap, hops[0], ((o.order_id.encode(), o.payload) for o in orders))
    )
    log = (stack.dir / f"{client}_client.log").open("wb")
    if client == "raw":
        written = [*hops[1:], side_topic(prefix)]
        command = [sys.executable, "-m", "bench.raw_client", "--bootstrap", bootstrap]
        command += ["--prefix", prefix, "--hops", str(shape.hops)]
        command += ["--side-per-hop", str(shape.side_per_hop), "--group", f"bench-{stack.name}"]
        env = dict(os.environ)
    else:
        app_id = f"bench-{stack.name}"
        written = [*hops[1:], f"{app_id}-side-changelog"]  # the side records: table writes
        command = [sys.executable, "-m", "faust", "-A", "bench.faust_client", "worker"]
        command += ["-l", "warn", "--web-port", str(free_ports(1)[0])]
        env = {
            **os.environ,
            "BENCH_FAUST_APP_ID": app_id,
            "BENCH_FAUST_BOOTSTRAP": bootstrap,
            "BENCH_FAUST_PREFIX": prefix,
            "BENCH_FAUST_HOPS": str(shape.hops),
            "BENCH_FAUST_SIDE_PER_HOP": str(shape.side_per_hop),
            "BENCH_FAUST_PARTITIONS": str(config.partitions),
            "BENCH_FAUST_DATADIR": str(stack.dir / "faust-data"),
        }
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
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
    records = n * shape.hops + produced
    return RawRun(
        orders=n,
        records=records,
        elapsed_s=elapsed,
        orders_per_s=n / elapsed,
        messages_per_s=records / elapsed,
        peak_rss_mb=used.peak_rss_mb,
        cpu_s=cpu.between(first[0], last[1]),
    )

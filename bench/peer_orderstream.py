"""Scenario 3, our side: orderstream's inventory stage alone, in a real `faust worker`.

The real inventory agent as shipped (decode and validate, the domain rules, the RocksDB table
and its changelog, the dead-letter guard), fed only inventory commands, in a worker that runs
only that agent (ORDERSTREAM_AGENTS=inventory), as the Quix peer runs only its stage. (With every
agent running, the saga also read each result and dead-lettered it, an order it never placed:
twice the work the peer does.) That is the code the tuning changes, so it is what we compare.
"""

from __future__ import annotations

import asyncio

from bench import kafka_io, procstat
from bench.config import BenchConfig
from bench.peer import PeerRun, build_peer_input, finish
from bench.stack import RunStack
from bench.throughput import MIN_RATE
from orderstream.contracts.topics import changelog_topic, registry
from orderstream.domain.inventory import ProductStock
from orderstream.domain.state import decode_state


def measure(bootstrap: str, config: BenchConfig, n_reserves: int) -> PeerRun:
    env = {**config.worker_env, "ORDERSTREAM_AGENTS": "inventory"}
    stack = RunStack(bootstrap, "peer-orderstream", config.partitions, env)
    # Results timed by the broker's clock, as the Quix peer's are (ensure_topics keeps it).
    spec = registry(stack.settings)["inventory_events"]
    configs = {**spec.configs, **kafka_io.BROKER_TIME}
    asyncio.run(kafka_io.create_topics(bootstrap, [spec.name], spec.partitions, configs))
    stack.create_topics()
    data = build_peer_input(stack.name, n_reserves)
    asyncio.run(kafka_io.preload(bootstrap, stack.topic("inventory_requests"), data.records))
    output = spec.name
    worker = stack.start_worker()
    assert worker.proc is not None
    cpu = procstat.CpuTrace(worker.proc.pid)
    try:
        asyncio.run(
            kafka_io.wait_for_records(
                bootstrap,
                output,
                data.reserves,
                timeout_s=60 + n_reserves / MIN_RATE,
                alive=lambda: worker.running,
                on_poll=cpu.sample,
                label=stack.name,
            )
        )
        used = procstat.usage(cpu.pid)
        run = asyncio.run(finish("orderstream", bootstrap, output, data, used, cpu))
        unconserved = asyncio.run(_unconserved(stack))
    finally:
        stack.stop()
    if unconserved:
        run.problems.append(f"stock not conserved for {unconserved[:3]}")
    return run


async def _unconserved(stack: RunStack) -> list[str]:
    """Products whose latest stock (from the changelog) breaks the conservation invariant."""
    async with kafka_io.probe(stack.bootstrap) as consumer:
        records = await kafka_io.read_all(consumer, changelog_topic(stack.settings, "inventory"))
    latest = {rec.key: rec.value for rec in records if rec.value is not None}
    stocks = [decode_state(v, ProductStock) for v in latest.values()]
    return [s.productId for s in stocks if not s.conserved()]

"""Scenario 1: settled orders per second of one worker that starts on a preloaded order topic.

Timed from the worker's first record to the last terminal status (Kafka record timestamps, so
the worker's start-up and the harness's polling are not in the figure).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from app.demo import wait_restocked
from app.events import encode
from app.simulator import Scenario, build_scenario, restock_events
from app.topics import registry, route
from bench import kafka_io, procstat, profiling
from bench.checks import pipeline_problems
from bench.config import BenchConfig
from bench.stack import WORKER_READY_TIMEOUT_S, RunStack

# Registry topics the harness writes before the worker starts.
INPUT_ROLES = ("orders", "stock_adjustments")
MIN_RATE = 20.0  # orders/s below which a run is abandoned as stuck


@dataclass(frozen=True)
class ThroughputRun:
    orders: int
    elapsed_s: float
    orders_per_s: float
    messages_per_s: float
    consumed_per_order: float  # records the worker read per order
    produced_per_order: float  # records the worker wrote per order (changelogs included)
    per_topic: dict[str, int]  # records per registry role
    consumed_roles: list[str]  # the roles the worker's consumer group read
    peak_rss_mb: float
    cpu_s: float  # worker CPU between its first record and the last status
    problems: list[str]

    @property
    def cpu_share(self) -> float:
        """Worker CPU per second of the run (1.0 = one core busy all the time)."""
        return self.cpu_s / self.elapsed_s if self.elapsed_s else 0.0


def scenario_for(
    stack: RunStack, n_orders: int, run_id: str | None = None, seed: int = 7
) -> Scenario:
    return build_scenario(
        run_id or stack.name,
        n_orders,
        seed=seed,
        payment_limit=stack.settings.payment_limit_per_order,
    )


async def preload_orders(stack: RunStack, scenario: Scenario, run_id: str) -> None:
    """For a running worker: restocks on stock-adjustments, and once it applied them (Kafka
    orders records only within a partition: an order fetched before its product's restock is
    rejected), every order on the order topic."""
    await preload_restocks(stack, scenario, run_id)
    await wait_restocked(stack.settings, run_id, set(scenario.restocks))
    await preload_order_events(stack, scenario)


async def preload_restocks(stack: RunStack, scenario: Scenario, run_id: str) -> None:
    restocks = restock_events(run_id, scenario.restocks)
    adjustments = [(route(adj)[1].encode(), encode(adj)) for adj in restocks]
    await kafka_io.preload(stack.bootstrap, stack.topic("stock_adjustments"), adjustments)


async def preload_order_events(stack: RunStack, scenario: Scenario) -> None:
    orders = ((o.order_id.encode(), o.payload) for o in scenario.orders)
    await kafka_io.preload(stack.bootstrap, stack.topic("orders"), orders)


def stock_up(stack: RunStack, scenario: Scenario) -> None:
    """The restocks applied by a worker of their own, stopped before the orders are loaded: the
    measured worker then starts on the stock and a backlog of orders only."""
    asyncio.run(preload_restocks(stack, scenario, stack.name))
    stocker = stack.start_worker("stock")
    try:
        stocker.wait_ready(WORKER_READY_TIMEOUT_S)
        asyncio.run(wait_restocked(stack.settings, stack.name, set(scenario.restocks)))
    finally:
        stocker.stop()


def measure(
    bootstrap: str, config: BenchConfig, n_orders: int, profile_to: Path | None = None
) -> ThroughputRun:
    stack = RunStack(bootstrap, "throughput", config.partitions, config.worker_env)
    stack.create_topics()
    scenario = scenario_for(stack, n_orders)
    stock_up(stack, scenario)
    asyncio.run(preload_order_events(stack, scenario))
    started = time.time()
    worker = stack.start_worker()
    assert worker.proc is not None
    cpu = procstat.CpuTrace(worker.proc.pid)
    sampling = profiling.sampled(cpu.pid, profile_to) if profile_to else contextlib.nullcontext()
    try:
        with sampling:
            asyncio.run(
                kafka_io.wait_for_records(
                    bootstrap,
                    stack.topic("order_status"),
                    n_orders,
                    timeout_s=60 + n_orders / MIN_RATE,
                    alive=lambda: worker.running,
                    on_poll=cpu.sample,
                    label=stack.name,
                )
            )
            used = procstat.usage(cpu.pid)
        return asyncio.run(_result(stack, scenario, used, cpu, started))
    finally:
        stack.stop()


async def _result(
    stack: RunStack,
    scenario: Scenario,
    used: procstat.Usage,
    cpu: procstat.CpuTrace,
    started: float,
) -> ThroughputRun:
    problems = await pipeline_problems(stack.settings, scenario)
    n = len(scenario.orders)
    roles = {spec.name: role for role, spec in registry(stack.settings).items()}
    # What the worker reads is measured too: the topics its group committed offsets for.
    consumed_topics = await kafka_io.consumed_topics(stack.bootstrap, stack.settings.app_id)
    async with kafka_io.probe(stack.bootstrap) as consumer:
        per_topic = {roles[t]: c for t, c in (await kafka_io.end_offsets(consumer, roles)).items()}
        written = [t for t, role in roles.items() if role not in INPUT_ROLES]
        first = await kafka_io.edge_timestamps(consumer, written, since=started)
        last = await kafka_io.edge_timestamps(consumer, [stack.topic("order_status")])
    assert first is not None and last is not None  # every order reached a status
    elapsed = last[1] - first[0]
    consumed = sum(per_topic[roles[t]] for t in consumed_topics if t in roles)
    produced = sum(per_topic.values()) - sum(per_topic[r] for r in INPUT_ROLES)
    return ThroughputRun(
        orders=n,
        elapsed_s=elapsed,
        orders_per_s=n / elapsed,
        messages_per_s=(consumed + produced) / elapsed,
        consumed_per_order=consumed / n,
        produced_per_order=produced / n,
        per_topic=per_topic,
        consumed_roles=sorted(roles[t] for t in consumed_topics if t in roles),
        peak_rss_mb=used.peak_rss_mb,
        cpu_s=cpu.between(first[0], last[1]),
        problems=problems,
    )

"""Scenario 1: settled orders per second of one worker that starts on a preloaded order topic;
and of several workers on this machine sharing the partitions.

Timed from the workers' first record to the last terminal status (Kafka record timestamps, so
the workers' start-up and the harness's polling are not in the figure).

One worker starts on the preloaded backlog. Several workers cannot: started together on a
backlog, the first to join the group takes every partition and the next one's join is a
rebalance in the middle of the timed run. So they start first, the harness waits until every
one is ready (one settled assignment, tables recovered), and only then loads the orders; they
settle them while the load is still being written (a second or two of harness CPU at the start).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import kafka_io, procstat, profiling
from bench.checks import pipeline_problems
from bench.config import BenchConfig
from bench.errors import BenchError
from bench.stack import WORKER_READY_TIMEOUT_S, RunStack
from devtools.demo import wait_restocked
from devtools.simulator import Scenario, build_scenario, restock_events
from devtools.workers import WorkerProcess
from orderstream.contracts.events import encode
from orderstream.contracts.topics import registry, route
from orderstream.errors import OrderstreamError

# Registry topics the harness writes before the worker starts.
INPUT_ROLES = ("orders", "stock_adjustments")
MIN_RATE = 20.0  # orders/s below which a run is abandoned as stuck
# Several workers, all ready before the load: this long with no new status means stuck (e.g. a
# worker "ready" after a rebalance that never fetches some partitions, faust-streaming #629).
STALL_S = 120.0


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
    records_per_order: float  # consumed + produced: Kafka records per settled order
    peak_rss_mb: float  # of the largest worker
    cpu_s: float  # CPU of all workers between the first record and the last status
    cpu_ms_per_order: float  # cpu_s in ms per settled order
    worker_cpu_s: list[float]  # cpu_s, worker by worker
    problems: list[str]

    @property
    def workers(self) -> int:
        return len(self.worker_cpu_s)

    @property
    def cpu_share(self) -> float:
        """Worker CPU per second of the run (1.0 = one core busy all the time)."""
        return self.cpu_s / self.elapsed_s if self.elapsed_s else 0.0

    @classmethod
    def of(
        cls,
        *,
        orders: int,
        elapsed_s: float,
        consumed: int,
        produced: int,
        per_topic: dict[str, int],
        consumed_roles: list[str],
        peak_rss_mb: Sequence[float],
        worker_cpu_s: Sequence[float],
        problems: list[str],
    ) -> ThroughputRun:
        """A run from its counts and per-worker usage: the workers share one machine, so their
        CPU adds up, while the peak RSS is the largest worker's (what one worker needs)."""
        cpu_s = sum(worker_cpu_s)
        return cls(
            orders=orders,
            elapsed_s=elapsed_s,
            orders_per_s=orders / elapsed_s,
            messages_per_s=(consumed + produced) / elapsed_s,
            consumed_per_order=consumed / orders,
            produced_per_order=produced / orders,
            per_topic=per_topic,
            consumed_roles=consumed_roles,
            records_per_order=(consumed + produced) / orders,
            peak_rss_mb=max(peak_rss_mb),
            cpu_s=cpu_s,
            cpu_ms_per_order=cpu_s * 1000.0 / orders,
            worker_cpu_s=list(worker_cpu_s),
            problems=problems,
        )


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
    bootstrap: str,
    config: BenchConfig,
    n_orders: int,
    profile_to: Path | None = None,
    workers: int = 1,
) -> ThroughputRun:
    """One run of `workers` real worker processes (w1, w2, ...) on one stack; a profile is
    sampled from w1."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    stack = RunStack(
        bootstrap,
        "throughput" if workers == 1 else f"throughput{workers}w",
        config.partitions,
        config.worker_env,
    )
    stack.create_topics()
    scenario = scenario_for(stack, n_orders)
    stock_up(stack, scenario)
    try:
        if workers == 1:
            asyncio.run(preload_order_events(stack, scenario))
            started = time.time()
            procs = [stack.start_worker("w1")]
        else:
            procs = [stack.start_worker(f"w{i}") for i in range(1, workers + 1)]
            _wait_all_ready(procs)
            started = time.time()
        traces = [procstat.CpuTrace(_pid(p)) for p in procs]
        _sample(traces)  # before the first record: the timed window starts inside the samples
        sampling = (
            profiling.sampled(traces[0].pid, profile_to) if profile_to else contextlib.nullcontext()
        )
        with sampling:
            asyncio.run(_settle(stack, scenario, procs, traces, load=workers > 1))
            used = [procstat.usage(t.pid) for t in traces]
        return asyncio.run(_result(stack, scenario, used, traces, started))
    finally:
        stack.stop()


async def _settle(
    stack: RunStack,
    scenario: Scenario,
    procs: Sequence[WorkerProcess],
    traces: Sequence[procstat.CpuTrace],
    *,
    load: bool,
) -> None:
    """Until every order has its status, sampling the workers' CPU; with `load`, the orders are
    written meanwhile (the workers are already running)."""
    n = len(scenario.orders)
    waiting = kafka_io.wait_for_records(
        stack.bootstrap,
        stack.topic("order_status"),
        n,
        timeout_s=60 + n / MIN_RATE,
        alive=lambda: all(p.running for p in procs),
        on_poll=lambda: _sample(traces),
        label=stack.name,
        stall_s=STALL_S if load else None,
    )
    if not load:
        await waiting
        return
    loading = asyncio.create_task(preload_order_events(stack, scenario))
    try:
        await waiting
    except BaseException:
        loading.cancel()
        with contextlib.suppress(BaseException):
            await loading
        raise
    await loading  # every status is in, so the load is done (or failed: it raises here)


def _sample(traces: Sequence[procstat.CpuTrace]) -> None:
    for trace in traces:
        trace.sample()


def _pid(worker: WorkerProcess) -> int:
    assert worker.proc is not None
    return worker.proc.pid


def _wait_all_ready(procs: Sequence[WorkerProcess]) -> None:
    """Until every worker is ready at once: a worker ready before the next one joined is
    rebalancing again when that one is ready, so check them all a second time."""
    try:
        for _ in range(2):
            for proc in procs:
                proc.wait_ready(WORKER_READY_TIMEOUT_S)
    except OrderstreamError as exc:
        raise BenchError(str(exc)) from exc


async def _result(
    stack: RunStack,
    scenario: Scenario,
    used: list[procstat.Usage],
    traces: list[procstat.CpuTrace],
    started: float,
) -> ThroughputRun:
    problems = await pipeline_problems(stack.settings, scenario)
    n = len(scenario.orders)
    roles = {spec.name: role for role, spec in registry(stack.settings).items()}
    # What the workers read is measured too: the topics their group committed offsets for.
    consumed_topics = await kafka_io.consumed_topics(stack.bootstrap, stack.settings.app_id)
    async with kafka_io.probe(stack.bootstrap) as consumer:
        per_topic = {roles[t]: c for t, c in (await kafka_io.end_offsets(consumer, roles)).items()}
        written = [t for t, role in roles.items() if role not in INPUT_ROLES]
        first = await kafka_io.edge_timestamps(consumer, written, since=started)
        last = await kafka_io.edge_timestamps(consumer, [stack.topic("order_status")])
    assert first is not None and last is not None  # every order reached a status
    consumed = sum(per_topic[roles[t]] for t in consumed_topics if t in roles)
    produced = sum(per_topic.values()) - sum(per_topic[r] for r in INPUT_ROLES)
    return ThroughputRun.of(
        orders=n,
        elapsed_s=last[1] - first[0],
        consumed=consumed,
        produced=produced,
        per_topic=per_topic,
        consumed_roles=sorted(roles[t] for t in consumed_topics if t in roles),
        peak_rss_mb=[u.peak_rss_mb for u in used],
        worker_cpu_s=[t.between(first[0], last[1]) for t in traces],
        problems=problems,
    )

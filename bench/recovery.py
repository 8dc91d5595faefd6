"""Scenario 5: recovery. With many keys in the orders table's changelog, a worker starts with an
empty data directory; timed until GET /readyz says its tables are recovered.

The changelog is filled with copies of real terminal orders (from a short real run, so the
values follow the model as it is), each under a new orderId, written straight to the topic.
After each recovery a small batch of new orders must settle, with the invariants intact.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from bench import kafka_io, procstat, profiling
from bench.checks import pipeline_problems
from bench.config import BenchConfig
from bench.errors import BenchError
from bench.stack import WORKER_READY_TIMEOUT_S, RunStack
from bench.throughput import MIN_RATE, preload_orders, scenario_for
from devtools.simulator import Scenario
from devtools.workers import WorkerProcess
from orderstream.contracts.topics import TABLES, changelog_topic

TEMPLATE_ORDERS = 200


@dataclass(frozen=True)
class RecoveryRun:
    records: int  # changelog records the worker replays (all tables)
    ready_s: float  # worker start -> /readyz 200
    empty_ready_s: float  # the same start with empty tables: the fixed start-up cost
    peak_rss_mb: float
    probe_s: float  # after ready: a batch of new orders placed -> all settled
    problems: list[str]

    @property
    def records_per_s(self) -> float:
        return self.records / self.ready_s

    @property
    def net_records_per_s(self) -> float:
        """Replay rate without the start-up cost (imports, group join) of an empty worker."""
        replay = self.ready_s - self.empty_ready_s
        return self.records / replay if replay > 0 else float("nan")


class RecoveryBench:
    """One loaded stack (changelog filled once) and one empty stack, started afresh per run."""

    def __init__(self, bootstrap: str, config: BenchConfig) -> None:
        self.config = config
        self.loaded = RunStack(bootstrap, "recovery", config.partitions, config.worker_env)
        self.empty = RunStack(bootstrap, "recovery-empty", config.partitions, config.worker_env)
        self.loaded.create_topics()
        self.empty.create_topics()
        self.runs = itertools.count(1)
        worker = self.loaded.start_worker("template")
        try:
            worker.wait_ready(WORKER_READY_TIMEOUT_S)
            template = scenario_for(self.loaded, TEMPLATE_ORDERS)
            problems = _feed_and_settle(self.loaded, worker, template, self.loaded.name)
        finally:
            _discard(worker)
        if problems:
            raise BenchError(f"the template run broke invariants: {problems[:3]}")
        self.records = asyncio.run(self._fill(config.recovery_keys))

    def measure(self, profile_to: Path | None = None) -> RecoveryRun:
        n = next(self.runs)
        empty_s, empty_worker = _time_to_ready(self.empty, f"w{n}")
        _discard(empty_worker)
        ready_s, worker = _time_to_ready(self.loaded, f"w{n}", profile_to)
        try:
            run_id = f"{self.loaded.name}-p{n}"
            probe = scenario_for(self.loaded, self.config.recovery_probe_orders, run_id, seed=n)
            start = time.monotonic()
            problems = _feed_and_settle(self.loaded, worker, probe, run_id)
            probe_s = time.monotonic() - start
            assert worker.proc is not None
            peak = procstat.usage(worker.proc.pid).peak_rss_mb
        finally:
            _discard(worker)
        return RecoveryRun(self.records, ready_s, empty_s, peak, probe_s, problems)

    async def _fill(self, keys: int) -> int:
        """Fill the orders table up to `keys` with copies of the template run's orders; the
        number of records in all changelogs afterwards."""
        topic = changelog_topic(self.loaded.settings, "orders")
        async with kafka_io.probe(self.loaded.bootstrap) as consumer:
            latest = {r.key: r.value for r in await kafka_io.read_all(consumer, topic)}
        templates = [(k, v) for k, v in latest.items() if v is not None]
        copies = _copies(templates, keys - len(latest), self.loaded.name)
        await kafka_io.preload(self.loaded.bootstrap, topic, copies)
        names = [changelog_topic(self.loaded.settings, t) for t in TABLES]
        async with kafka_io.probe(self.loaded.bootstrap) as consumer:
            return sum((await kafka_io.end_offsets(consumer, names)).values())


def _copies(
    templates: list[tuple[bytes, bytes]], count: int, prefix: str
) -> Iterator[tuple[bytes, bytes]]:
    for i in range(count):
        old_id, value = templates[i % len(templates)]
        new_id = f"{prefix}-k{i:08d}".encode()
        yield new_id, value.replace(old_id, new_id)


def _time_to_ready(
    stack: RunStack, name: str, profile_to: Path | None = None
) -> tuple[float, WorkerProcess]:
    """Start a worker with an empty data directory; seconds until it is ready."""
    start = time.monotonic()
    worker = stack.start_worker(name)
    assert worker.proc is not None
    sampling = profiling.sampled(worker.proc.pid, profile_to) if profile_to else nullcontext()
    with sampling:
        worker.wait_ready(WORKER_READY_TIMEOUT_S)
    return time.monotonic() - start, worker


def _discard(worker: WorkerProcess) -> None:
    """Stop a worker and delete its data directory (a recovered table is large)."""
    worker.stop()
    shutil.rmtree(worker.datadir, ignore_errors=True)


def _feed_and_settle(
    stack: RunStack, worker: WorkerProcess, scenario: Scenario, run_id: str
) -> list[str]:
    """Feed orders to a running worker, wait until all settled; the problems found."""

    async def run() -> list[str]:
        status = stack.topic("order_status")
        async with kafka_io.probe(stack.bootstrap) as consumer:
            before = (await kafka_io.end_offsets(consumer, [status]))[status]
        await preload_orders(stack, scenario, run_id)
        n = len(scenario.orders)
        await kafka_io.wait_for_records(
            stack.bootstrap,
            status,
            before + n,
            timeout_s=60 + n / MIN_RATE,
            alive=lambda: worker.running,
            label=stack.name,
        )
        return await pipeline_problems(stack.settings, scenario)

    return asyncio.run(run())

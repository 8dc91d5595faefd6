"""Integration fixtures: one real Kafka broker per session, real `faust worker` processes per test.

Each test gets its own topics (a topic prefix) and its own application id, so tests share the
broker but no state.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devtools import demo
from devtools.broker import LocalBroker
from devtools.workers import WorkerProcess
from orderstream.errors import OrderstreamError
from orderstream.kafka.admin import ensure_topics
from orderstream.settings import Settings

REPO = Path(__file__).resolve().parents[2]
# Per pytest process, so two sessions on one machine never share a broker or a data dir.
RUN_DIR = REPO / "var" / "test-run" / str(os.getpid())
_counter = itertools.count(1)
_LOG_LINES = 60  # of each worker's log, shown when a test fails


def free_ports(count: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _broker(name: str) -> Iterator[LocalBroker]:
    port, controller = free_ports(2)
    settings = Settings(
        local_broker_dir=RUN_DIR / name,
        local_broker_port=port,
        local_controller_port=controller,
        local_broker_heap="1g",
    )
    broker = LocalBroker(settings)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        # ORDERSTREAM_TEST_KEEP_BROKER_DATA=1 keeps the topics of a failed run to read them after
        # (start a broker on var/test-run/<pid>/<name> with the ports in its server.properties)
        if not os.environ.get("ORDERSTREAM_TEST_KEEP_BROKER_DATA"):
            shutil.rmtree(RUN_DIR / name / "data", ignore_errors=True)


@pytest.fixture(scope="session")
def kafka() -> Iterator[LocalBroker]:
    """The session's broker: a real Apache Kafka (KRaft) on free ports, data under var/."""
    yield from _broker("kafka")


@pytest.fixture(scope="module")
def own_kafka(request: pytest.FixtureRequest) -> Iterator[LocalBroker]:
    """A broker for one test module. Late in a long session, on the shared broker, two-worker
    rebalances sometimes leave partitions (standby ones too) unfetched (faust-streaming #629);
    modules whose assertions depend on a clean rebalance get a broker of their own."""
    yield from _broker("kafka-" + request.module.__name__.rsplit(".", 1)[-1])


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """A topic on the broker, with one replica (for tests that write their own records)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()


class Stack:
    """Settings for one test's isolated pipeline, and the workers it started."""

    def __init__(self, broker: LocalBroker, name: str, **overrides: object) -> None:
        n = next(_counter)
        self.dir = RUN_DIR / f"{n:02d}-{name}"
        self.env = {
            "ORDERSTREAM_BROKER": f"kafka://{broker.bootstrap}",
            "ORDERSTREAM_APP_ID": f"os{n}-{os.getpid()}",
            "ORDERSTREAM_TOPIC_PREFIX": f"t{n}-{os.getpid()}-",
            "ORDERSTREAM_PARTITIONS": "4",
            # Real RocksDB tables (tests/conftest.py sets memory:// in this process's environment)
            "ORDERSTREAM_STORE": "orderstream://",
            # Timeouts are a safety net: short ones re-drive orders that are merely queued
            # behind a backlog (the chaos test builds one), adding load to a busy system.
            "ORDERSTREAM_SAGA_TIMEOUT_S": "120",
            "ORDERSTREAM_SAGA_TIMEOUT_SCAN_S": "2",
        }
        self.env.update({f"ORDERSTREAM_{k.upper()}": str(v) for k, v in overrides.items()})
        self.settings = Settings(
            **{k.removeprefix("ORDERSTREAM_").lower(): v for k, v in self.env.items()}
        )
        self.started: list[WorkerProcess] = []
        asyncio.run(ensure_topics(self.settings))

    def workers(self, *names: str) -> list[WorkerProcess]:
        """Start several workers at once, then wait for all: one rebalance, not one per worker."""
        procs = [self.worker(name, wait=False) for name in names]
        for proc in procs:
            proc.wait_ready()
        return procs

    def worker(self, name: str = "w1", wait: bool = True, **env: object) -> WorkerProcess:
        """Start a real `faust worker` for this stack and wait until it is ready."""
        (port,) = free_ports(1)
        proc = WorkerProcess(
            name,
            self.dir / name,
            port,
            env={**self.env, **{f"ORDERSTREAM_{k.upper()}": str(v) for k, v in env.items()}},
            log_path=self.dir / f"{name}.log",
        )
        proc.start()
        self.started.append(proc)
        if wait:
            proc.wait_ready()
        return proc

    def run_orders(self, n_orders: int, **options: Any) -> demo.DemoResult:
        """demo.run, with one liveness restart of the workers if they never take up the restocks.

        Works around faust-streaming #629 (a worker "Ready" after a rebalance that never
        fetches some partitions), as an orchestrator's liveness probe would; the restart is
        printed, so a run that needed it is visible in the test output."""
        try:
            return asyncio.run(demo.run(self.settings, n_orders, **options))
        except OrderstreamError as exc:
            if "restocks not applied" not in str(exc):
                raise
            print(f"\nworkers idle with records waiting ({exc}); restarting them once")
            for proc in self.started:
                proc.kill()
                proc.start()
            for proc in self.started:
                proc.wait_ready()
            return asyncio.run(demo.run(self.settings, n_orders, **options))

    def cli(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        """The real `orderstream` command line, with the stack's settings in the environment."""
        return subprocess.run(
            [sys.executable, "-m", "orderstream.ops.cli", *args],
            env={**os.environ, **self.env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def stop(self) -> None:
        for proc in self.started:
            proc.kill()


def _log_digest(log: Path) -> str:
    """The warnings, errors and last lines of a worker's log: what CI shows of a failure."""
    lines = log.read_text(errors="replace").splitlines()
    notable = [ln for ln in lines if "[WARNING]" in ln or "[ERROR]" in ln]
    return "\n".join([*notable[-_LOG_LINES:], "...", *lines[-10:]])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and call.when == "call":
        for s in getattr(item, "_stacks_made", []):
            for log in sorted(s.dir.glob("*.log")):
                report.sections.append((f"worker log {log.name} ({log})", _log_digest(log)))
    return report


def _stacks(broker: LocalBroker, request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    made: list[Stack] = []
    request.node._stacks_made = made  # for the failure report

    def make(**overrides: object) -> Stack:
        s = Stack(broker, request.node.name[:40], **overrides)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def stack(kafka: LocalBroker, request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """Isolated pipelines (own topics and app id) on the session's broker."""
    yield from _stacks(kafka, request)


@pytest.fixture
def own_stack(
    own_kafka: LocalBroker, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Stack]]:
    """Isolated pipelines on the module's own broker (see `own_kafka`)."""
    yield from _stacks(own_kafka, request)

"""The broker and the isolated stacks of one benchmark session.

Every run gets its own application id and topic prefix, so runs share the broker but no state.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from bench import kafka_io
from bench.config import REPO, RUN_ROOT
from devtools.broker import LocalBroker
from devtools.workers import WorkerProcess
from orderstream.contracts.topics import registry
from orderstream.kafka.admin import ensure_topics
from orderstream.settings import Settings

BROKER_DIR = REPO / "var" / "bench-kafka"
BROKER_HEAP = "1g"
WORKER_READY_TIMEOUT_S = 900.0
_serial = itertools.count(1)


def free_ports(count: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@contextmanager
def bench_broker(bootstrap: str | None) -> Iterator[tuple[str, str]]:
    """(bootstrap, Kafka version): the given broker, or a dedicated one wiped and started here."""
    if bootstrap:
        yield bootstrap, "external"
        return
    port, controller = free_ports(2)
    broker = LocalBroker(
        Settings(
            local_broker_dir=BROKER_DIR,
            local_broker_port=port,
            local_controller_port=controller,
            local_broker_heap=BROKER_HEAP,
        )
    )
    broker.wipe()
    broker.start()
    try:
        yield broker.bootstrap, broker.version
    finally:
        broker.stop()


def settings_with(env: Mapping[str, str]) -> Settings:
    """The settings a worker started with these ORDERSTREAM_* variables will have."""
    fields: dict[str, Any] = {k.removeprefix("ORDERSTREAM_").lower(): v for k, v in env.items()}
    return Settings(**fields)


class RunStack:
    """Settings and workers of one isolated run: fresh topics, app id and data directories."""

    def __init__(
        self, bootstrap: str, label: str, partitions: int, extra_env: dict[str, str]
    ) -> None:
        n = next(_serial)
        self.name = f"{label}-{n}-{os.getpid()}"
        self.dir = RUN_ROOT / self.name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.env = {
            "ORDERSTREAM_BROKER": f"kafka://{bootstrap}",
            "ORDERSTREAM_APP_ID": f"bench-{self.name}",
            "ORDERSTREAM_TOPIC_PREFIX": f"{self.name}-",
            "ORDERSTREAM_PARTITIONS": str(partitions),
            **extra_env,
        }
        self.settings = settings_with(self.env)
        self.bootstrap = bootstrap
        self.workers: list[WorkerProcess] = []

    def create_topics(self) -> None:
        asyncio.run(ensure_topics(self.settings))
        names = [spec.name for spec in registry(self.settings).values()]
        asyncio.run(kafka_io.wait_writable(self.bootstrap, names))

    def topic(self, role: str) -> str:
        """Name of a registry topic (or of a harness-only topic) in this run's namespace."""
        specs = registry(self.settings)
        return specs[role].name if role in specs else f"{self.settings.topic_prefix}{role}"

    def start_worker(self, name: str = "w1") -> WorkerProcess:
        """Start a real `faust worker` (without waiting for it) with an empty data directory."""
        (port,) = free_ports(1)
        datadir = self.dir / name
        shutil.rmtree(datadir, ignore_errors=True)
        proc = WorkerProcess(name, datadir, port, env=self.env, log_path=self.dir / f"{name}.log")
        proc.start()
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.workers:
            proc.stop()

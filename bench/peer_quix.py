"""Scenario 3, the peer's side: the Quix Streams app (bench/quix_inventory.py) on the same input.

It runs under its own interpreter (`--quix-python`, made by `make bench`) because quixstreams
cannot share the project's virtualenv (it pins pydantic below our version).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from bench import kafka_io, procstat
from bench.config import REPO, BenchConfig
from bench.errors import BenchError
from bench.peer import PeerRun, build_peer_input, finish
from bench.stack import RunStack
from bench.throughput import MIN_RATE

APP = REPO / "bench" / "quix_inventory.py"


def quix_version(python: Path) -> str:
    """The quixstreams version installed for `python`; BenchError with the fix when missing."""
    if not python.exists():
        raise BenchError(
            f"{python} not found: `make bench` creates it, or run "
            f"`python3 -m venv {python.parent.parent} && {python.parent}/pip install "
            f"-r bench/requirements-quix.txt`, or pass --quix-python"
        )
    proc = subprocess.run(
        [str(python), "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"quixstreams does not import under {python}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def measure(bootstrap: str, config: BenchConfig, n_reserves: int) -> PeerRun:
    stack = RunStack(bootstrap, "peer-quix", config.partitions, {})
    source, output = stack.topic("inventory-requests"), stack.topic("quix-results")
    asyncio.run(kafka_io.create_topics(bootstrap, [source], config.partitions))
    # Quix copies each input's timestamp to its output: time the results by the broker's clock.
    asyncio.run(
        kafka_io.create_topics(bootstrap, [output], config.partitions, kafka_io.BROKER_TIME)
    )
    data = build_peer_input(stack.name, n_reserves)
    asyncio.run(kafka_io.preload(bootstrap, source, data.records))
    log = (stack.dir / "quix.log").open("wb")
    command = [str(config.quix_python), str(APP), "--bootstrap", bootstrap]
    command += ["--input", source, "--output", output, "--group", f"bench-{stack.name}"]
    command += ["--state-dir", str(stack.dir / "quix-state")]
    proc = subprocess.Popen(
        command,
        cwd=stack.dir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    cpu = procstat.CpuTrace(proc.pid)
    try:
        asyncio.run(
            kafka_io.wait_for_records(
                bootstrap,
                output,
                data.reserves,
                timeout_s=60 + n_reserves / MIN_RATE,
                alive=lambda: proc.poll() is None,
                on_poll=cpu.sample,
                label=stack.name,
            )
        )
        used = procstat.usage(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
    return asyncio.run(finish("quixstreams", bootstrap, output, data, used, cpu))

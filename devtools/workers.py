"""Starts and stops real `faust worker` processes (for the demo, the tests and the benchmark)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from orderstream.errors import OrderstreamError


@dataclass
class WorkerProcess:
    """One `faust -A orderstream.worker.app worker` process with its own data dir and web port."""

    name: str
    datadir: Path
    web_port: int
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **self.env,
            "ORDERSTREAM_DATADIR": str(self.datadir),
            "ORDERSTREAM_WEB_PORT": str(self.web_port),
        }
        self.log_path = self.log_path or self.datadir.parent / f"{self.name}.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faust",
                "-A",
                "orderstream.worker.app",
                "worker",
                "-l",
                "info",
                "--web-port",
                str(self.web_port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        log.close()

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until the worker says its tables are recovered (GET /readyz answers 200)."""
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.web_port}/readyz"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise OrderstreamError(
                    f"worker {self.name} exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise OrderstreamError(
            f"worker {self.name} not ready after {timeout_s:.0f}s; see {self.log_path}"
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful stop (SIGTERM: Faust flushes and commits), SIGKILL if it hangs."""
        if not self.running:
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.running:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

"""Memory and CPU of a process under test, read from /proc (Linux)."""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


def status_kb(status_text: str, field: str) -> int:
    """A `kB` field of /proc/<pid>/status ("VmHWM", "VmRSS"); 0 when absent."""
    for line in status_text.splitlines():
        name, _, rest = line.partition(":")
        if name == field:
            return int(rest.split()[0])
    return 0


def cpu_ticks(stat_text: str) -> int:
    """utime + stime of /proc/<pid>/stat (fields 14 and 15; the name may contain spaces)."""
    fields = stat_text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def children(pid: int) -> list[int]:
    """Direct children of a process, over all its threads."""
    found: list[int] = []
    for task in (PROC / str(pid) / "task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += children(current)
    return pids


@dataclass(frozen=True)
class Usage:
    """What a process tree used so far: peak resident memory and CPU time."""

    peak_rss_mb: float
    rss_mb: float
    cpu_s: float


def usage(pid: int) -> Usage:
    """Peak RSS (VmHWM, summed over the tree: an upper bound) and CPU seconds of a process tree."""
    peak = rss = ticks = 0
    for member in tree(pid):
        try:
            status = (PROC / str(member) / "status").read_text()
            stat = (PROC / str(member) / "stat").read_text()
        except OSError:
            continue
        peak += status_kb(status, "VmHWM")
        rss += status_kb(status, "VmRSS")
        ticks += cpu_ticks(stat)
    return Usage(peak / 1024, rss / 1024, ticks / os.sysconf("SC_CLK_TCK"))


def interpolate(samples: list[tuple[float, float]], at: float) -> float:
    """Linear interpolation in (time, value) samples sorted by time, clamped at both ends."""
    if not samples:
        return 0.0
    i = bisect_left(samples, (at, float("-inf")))
    if i == 0:
        return samples[0][1]
    if i == len(samples):
        return samples[-1][1]
    (t0, v0), (t1, v1) = samples[i - 1], samples[i]
    return v0 + (v1 - v0) * (at - t0) / (t1 - t0) if t1 > t0 else v1


@dataclass
class CpuTrace:
    """CPU seconds of a process tree sampled over wall-clock time, to cut out any window."""

    pid: int
    samples: list[tuple[float, float]] = field(default_factory=list)

    def sample(self) -> None:
        self.samples.append((time.time(), usage(self.pid).cpu_s))

    def between(self, start: float, end: float) -> float:
        """CPU seconds used between two epoch times (e.g. the first and last record)."""
        return interpolate(self.samples, end) - interpolate(self.samples, start)

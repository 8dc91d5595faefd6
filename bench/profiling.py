"""Optional sampling profiles of a process under test (py-spy) and their top functions."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError

SAMPLE_RATE_HZ = 100


def _py_spy() -> str:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        raise BenchError("py-spy not found: install the bench extras (pip install -e '.[bench]')")
    return exe


@contextmanager
def sampled(pid: int, out: Path) -> Iterator[None]:
    """Sample `pid` while the block runs; collapsed stacks go to `out` (py-spy's raw format)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [_py_spy(), "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    command += ["--rate", str(SAMPLE_RATE_HZ), "--nonblocking"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass(frozen=True)
class Hotspot:
    frame: str
    self_share: float  # of all samples, the function itself was running
    total_share: float  # of all samples, the function was on the stack


def hotspots(collapsed: str, limit: int = 25) -> list[Hotspot]:
    """Top functions by inclusive share from collapsed stacks ("a;b;c COUNT" per line)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return []
    return [
        Hotspot(frame, own[frame] / total, n / total) for frame, n in inclusive.most_common(limit)
    ]


def summarize(collapsed_path: Path, limit: int = 40) -> str:
    """A text table of the hottest functions, by time on the stack and time running."""
    spots = hotspots(collapsed_path.read_text(), limit)
    by_self = sorted(hotspots(collapsed_path.read_text(), 10_000), key=lambda h: -h.self_share)
    lines = [f"{'on stack':>9} {'self':>6}  function"]
    lines += [f"{h.total_share:>9.1%} {h.self_share:>6.1%}  {h.frame}" for h in spots]
    lines += ["", f"{'self':>9}  function"]
    lines += [f"{h.self_share:>9.1%}  {h.frame}" for h in by_self[:limit]]
    return "\n".join(lines) + "\n"

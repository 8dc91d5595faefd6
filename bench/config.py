"""What one benchmark session runs: sizes, repeats and the scenarios picked (full or quick)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCENARIOS: tuple[str, ...] = ("throughput", "raw", "peer", "latency", "recovery")
DEFAULT_OUT = REPO / "bench" / "results" / "latest.json"
DEFAULT_QUIX_PYTHON = REPO / "var" / "bench-quix-venv" / "bin" / "python"
RUN_ROOT = REPO / "var" / "bench-run"


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of every scenario; `quick()` shrinks them for a fast check that the harness works."""

    orders: int = 100_000
    repeat: int = 3
    warmup_orders: int = 10_000
    partitions: int = 4
    latency_rate: float = 100.0  # offered orders/s; a second run offers half the capacity
    latency_s: float = 60.0
    latency_warmup_s: float = 10.0
    recovery_keys: int = 1_000_000
    recovery_probe_orders: int = 200
    only: tuple[str, ...] = SCENARIOS
    bootstrap: str | None = None
    out: Path = DEFAULT_OUT
    baseline: Path | None = None
    quix_python: Path = DEFAULT_QUIX_PYTHON
    profile: bool = False
    quick: bool = False
    two_workers: bool = True  # after the one-worker runs, the same with two workers
    worker_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def quick_mode(cls) -> BenchConfig:
        return cls(
            orders=5_000,
            repeat=1,
            warmup_orders=1_000,
            latency_s=10.0,
            latency_warmup_s=3.0,
            recovery_keys=100_000,
            out=DEFAULT_OUT.with_name("quick.json"),  # never overwrites a full session's file
            quick=True,
        )

    def with_overrides(self, **changes: object) -> BenchConfig:
        """A copy with the given fields changed (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]

    def runs(self, scenario: str) -> bool:
        return scenario in self.only

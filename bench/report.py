"""Figures of a session: median / min / max over the runs, targets, the printed table, the JSON
file, and the deltas against a baseline file from an earlier session."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted values, linearly interpolated between ranks."""
    if not ordered:
        raise ValueError("percentile of no values")
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Target:
    op: Literal[">=", "<="]
    value: float

    def met(self, x: float) -> bool:
        return x >= self.value if self.op == ">=" else x <= self.value

    def __str__(self) -> str:
        return f"{self.op} {_num(self.value)}"


@dataclass(frozen=True)
class Figure:
    """One measured quantity over the repeated runs."""

    key: str  # stable name, e.g. "throughput.orders_per_s"
    label: str
    unit: str
    runs: list[float]
    target: Target | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def max(self) -> float:
        return max(self.runs)

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "ok" if self.target.met(self.median) else "MISS"


@dataclass(frozen=True)
class Measure:
    """Which attribute of a scenario's runs becomes a figure, named how, against what target."""

    key: str
    label: str
    unit: str
    attr: str
    target: Target | None = None


def figures(runs: Sequence[object], measures: Sequence[Measure]) -> list[Figure]:
    return [
        Figure(m.key, m.label, m.unit, [float(getattr(r, m.attr)) for r in runs], m.target)
        for m in measures
    ]


def ratio(measure: Measure, ours: Sequence[object], theirs: Sequence[object]) -> Figure:
    """Our figure over theirs, run by run (runs were interleaved, so pairs saw the same load)."""
    values = [
        float(getattr(a, measure.attr)) / float(getattr(b, measure.attr))
        for a, b in zip(ours, theirs, strict=True)
    ]
    return Figure(measure.key, measure.label, measure.unit, values, measure.target)


def ratio_of_medians(measure: Measure, ours: Sequence[object], theirs: Sequence[object]) -> Figure:
    """Median of our runs over the median of theirs, one value: for runs that were not
    interleaved (pairs did not see the same load) or differ in number."""
    if not ours or not theirs:
        raise ValueError("ratio of medians needs runs on both sides")
    mine = statistics.median(float(getattr(r, measure.attr)) for r in ours)
    other = statistics.median(float(getattr(r, measure.attr)) for r in theirs)
    return Figure(measure.key, measure.label, measure.unit, [mine / other], measure.target)


@dataclass
class Session:
    """Everything a benchmark session measured and how; what goes into the JSON file."""

    meta: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "figures": {
                f.key: {
                    "label": f.label,
                    "unit": f.unit,
                    "median": f.median,
                    "min": f.min,
                    "max": f.max,
                    "runs": f.runs,
                    "target": str(f.target) if f.target else None,
                    "verdict": f.verdict or None,
                }
                for f in self.figures
            },
            "details": self.details,
            "problems": self.problems,
        }


def baseline_medians(document: dict[str, Any]) -> dict[str, float]:
    """figure key -> median, from a JSON file written by an earlier session."""
    return {k: float(v["median"]) for k, v in document.get("figures", {}).items()}


def delta(now: float, before: float) -> str:
    """Relative change, signed, as a percentage ("+12.5%"); "" when it cannot be computed."""
    if before == 0 or math.isnan(before) or math.isnan(now):
        return ""
    return f"{(now - before) / abs(before) * 100:+.1f}%"


def _num(x: float) -> str:
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if x.is_integer():
        return f"{x:,.0f}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"


def table(figures: Sequence[Figure], baseline: dict[str, float] | None = None) -> str:
    """The printed table: one row per figure, with the baseline's median and the change."""
    head = ["figure", "median", "min", "max", "unit", "target", ""]
    if baseline is not None:
        head += ["baseline", "change"]
    rows = [head]
    for f in figures:
        row = [f.label, _num(f.median), _num(f.min), _num(f.max), f.unit]
        row += [str(f.target) if f.target else "", f.verdict]
        if baseline is not None:
            before = baseline.get(f.key)
            row += ["", ""] if before is None else [_num(before), delta(f.median, before)]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    numeric = {1, 2, 3, 7, 8}
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(session: Session, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(session.to_json(), indent=2, default=_plain) + "\n")
    tmp.replace(path)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")

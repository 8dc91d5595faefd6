"""Correctness at the end of every pipeline run: the project's invariants and expected outcomes."""

from __future__ import annotations

import asyncio
import time

from devtools.simulator import Scenario
from devtools.verify import RunReport, collect, invariant_violations
from orderstream.settings import Settings

SETTLE_TIMEOUT_S = 120.0


async def pipeline_problems(settings: Settings, scenario: Scenario) -> list[str]:
    """Broken invariants and unexpected outcomes of a run, in words (empty when all is well).

    Waits until the run's holds are committed or released (commands still in flight) first.
    """
    wanted = {o.order_id for o in scenario.orders}
    report = await _settled(settings, scenario, wanted)
    problems = invariant_violations(report, wanted)
    wrong = [
        f"{o.order_id} {report.status_of(o.order_id)} ({report.reasons.get(o.order_id)}), "
        f"expected {o.expected}"
        for o in scenario.orders
        if report.status_of(o.order_id) not in (None, o.expected)
    ]
    if wrong:
        problems.append(f"{len(wrong)} orders ended in an unexpected state, e.g. {wrong[:3]}")
    if report.dead_letters:
        problems.append(f"{report.dead_letters} dead letters")
    return problems


async def _settled(settings: Settings, scenario: Scenario, wanted: set[str]) -> RunReport:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        report = await collect(settings, wanted)
        open_holds = any(
            o in wanted for p, s in report.stock.items() if p in scenario.restocks for o in s.holds
        )
        if not open_holds or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.5)

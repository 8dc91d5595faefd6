"""Liveness and readiness: /healthz answers while the process runs, /readyz once tables are
recovered from their changelogs (503 before, and again during a rebalance's recovery), and
not while records the worker sent fail to reach the broker or a partition is stopped at a
record its agent failed on (`faults`)."""

from __future__ import annotations

from typing import Any, cast

from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable

from app.application import app


def tables_ready() -> bool:
    """Tables recovered from their changelogs, and no rebalance moving partitions right now."""
    recovery = cast(Any, app.tables).recovery
    return bool(recovery.completed.is_set() and not recovery.in_recovery and not app.rebalancing)


def faults() -> dict[str, object]:
    """What keeps the worker from processing or committing (app/faust_ext/consumer.py)."""
    found: dict[str, object] = cast(Any, app.consumer).faults()
    return found


def is_ready() -> bool:
    return tables_ready() and not faults()


def require_ready() -> None:
    """Table reads before recovery would answer stale or missing data: refuse them instead."""
    if not tables_ready():
        raise ServiceUnavailable("tables are recovering from their changelogs; retry shortly")


@app.page("/healthz")
class Healthz(View):
    async def get(self, request: Request) -> Response:
        return self.json({"status": "alive"})


def recovery_status() -> dict[str, int | None]:
    """Changelog records still to read: for the active partitions (before serving) and for the
    standby replicas (how far behind a failover to this worker would start; None until the
    replicas' end offsets are known)."""
    recovery = cast(Any, app.tables).recovery
    standbys = set(recovery.standby_tps)
    known = standbys <= set(recovery.standby_highwaters)
    return {
        "active_remaining": int(recovery.active_remaining_total()),
        "standby_partitions": len(standbys),
        "standby_remaining": int(recovery.standby_remaining_total()) if known else None,
    }


@app.page("/readyz")
class Readyz(View):
    async def get(self, request: Request) -> Response:
        found = faults()
        ready = tables_ready() and not found
        body = {"ready": ready, **recovery_status(), "faults": found}
        return self.json(body, status=200 if ready else 503)

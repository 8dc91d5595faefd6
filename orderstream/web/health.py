"""Liveness and readiness over HTTP: /healthz answers while the process runs, /readyz once the
worker is ready (orderstream/worker/readiness.py: 503 before, and again during a rebalance's
recovery or while a fault holds it up)."""

from __future__ import annotations

from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable

from orderstream.worker.app import app
from orderstream.worker.readiness import faults, recovery_status, tables_ready


def require_ready() -> None:
    """Table reads before recovery would answer stale or missing data: refuse them instead."""
    if not tables_ready():
        raise ServiceUnavailable("tables are recovering from their changelogs; retry shortly")


@app.page("/healthz")
class Healthz(View):
    async def get(self, request: Request) -> Response:
        return self.json({"status": "alive"})


@app.page("/readyz")
class Readyz(View):
    async def get(self, request: Request) -> Response:
        found = faults()
        ready = tables_ready() and not found
        body = {"ready": ready, **recovery_status(), "faults": found}
        return self.json(body, status=200 if ready else 503)

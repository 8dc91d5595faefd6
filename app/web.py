"""HTTP views served by every worker (Faust web, aiohttp)."""

from __future__ import annotations

from typing import Any, cast

from app.application import app


def is_ready() -> bool:
    """Tables recovered from their changelogs and no recovery running (after a rebalance)."""
    recovery = cast(Any, app.tables).recovery
    return bool(recovery.completed.is_set() and not recovery.in_recovery)


@app.page("/healthz")
async def healthz(web: Any, request: Any) -> Any:
    return web.json({"status": "alive"})


@app.page("/readyz")
async def readyz(web: Any, request: Any) -> Any:
    ready = is_ready()
    return web.json({"ready": ready}, status=200 if ready else 503)

"""Whether this worker is ready: its tables recovered from their changelogs (not again during a
rebalance's recovery), records it sent reaching the broker, and no partition stopped at a
record its agent failed on (`faults`). GET /readyz, the readiness gauge and the saga timer
read it."""

from __future__ import annotations

from typing import Any, cast

from orderstream.worker.app import app


def tables_ready() -> bool:
    """Tables recovered from their changelogs, and no rebalance moving partitions right now."""
    recovery = cast(Any, app.tables).recovery
    return bool(recovery.completed.is_set() and not recovery.in_recovery and not app.rebalancing)


def faults() -> dict[str, object]:
    """What keeps the worker from processing or committing (orderstream/faust_ext/consumer.py)."""
    found: dict[str, object] = cast(Any, app.consumer).faults()
    return found


def is_ready() -> bool:
    return tables_ready() and not faults()


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

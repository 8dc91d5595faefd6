"""Faults injected on purpose (ORDERSTREAM_CHAOS_*), for tests and drills: off by default."""

from __future__ import annotations

from app.settings import get_settings


class InjectedStoreError(OSError):
    """A table write failing as a broken disk or store would (chaos_store_failures)."""


_store_writes = 0


def store_write() -> None:
    """Called before each table write: the first ORDERSTREAM_CHAOS_STORE_FAILURES of them fail."""
    global _store_writes
    if _store_writes < get_settings().chaos_store_failures:
        _store_writes += 1
        raise InjectedStoreError(f"injected store failure {_store_writes} (chaos_store_failures)")

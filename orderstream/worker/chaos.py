"""Faults injected on purpose (ORDERSTREAM_CHAOS_*), for tests and drills: off by default."""

from __future__ import annotations

import logging
import os

from orderstream.settings import get_settings

log = logging.getLogger(__name__)


class InjectedStoreError(OSError):
    """A table write failing as a broken disk or store would (chaos_store_failures)."""


_store_writes = 0


def store_write() -> None:
    """Called before each table write: the first ORDERSTREAM_CHAOS_STORE_FAILURES of them fail."""
    global _store_writes
    if _store_writes < get_settings().chaos_store_failures:
        _store_writes += 1
        raise InjectedStoreError(f"injected store failure {_store_writes} (chaos_store_failures)")


def in_flush(partitions_written: int) -> None:
    """Called by the write-back tables after each partition's store batch of a flush: with
    ORDERSTREAM_CHAOS_CRASH_IN_FLUSH set to a path that does not exist yet, the worker dies
    (as kill -9 would: no cleanup) after the first batch, and leaves the file behind so that,
    restarted, it does not die again."""
    marker = get_settings().chaos_crash_in_flush
    if marker is None or partitions_written < 1 or marker.exists():
        return
    marker.write_text("the worker died in the middle of a flush\n")
    log.error("chaos: dying in the middle of a flush, %d partitions written", partitions_written)
    os._exit(70)

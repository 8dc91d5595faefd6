"""The worker's garbage collector, set for a stream processor, and timed.

Python's cyclic collector runs in the thread that allocates, here the event loop's: while it
walks the heap no stream moves. Each record allocates (the Faust event, the decoded event, its
models, futures), and a young collection follows every `gc_young_threshold` allocations net of
deallocations; one in ten of them collects the middle generation, and a full collection walks
every object the worker keeps. The objects made while the worker starts (modules, Faust's
services, the agents, the tables) live as long as the worker: `freeze` leaves them out of every
later collection. Each collection's pause is observed in `orderstream_gc_pause_seconds`.
"""

from __future__ import annotations

import gc
from time import perf_counter
from typing import Any

from orderstream.observability import metrics
from orderstream.settings import Settings

_started_at = 0.0


def configure(settings: Settings) -> None:
    """The young generation's threshold from the settings, and every collection timed."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(settings.gc_young_threshold, middle, old)
    if _timed not in gc.callbacks:
        gc.callbacks.append(_timed)


def freeze() -> None:
    """Collect once, then move every object alive into the permanent generation."""
    gc.collect()
    gc.freeze()


def _timed(phase: str, info: dict[str, Any]) -> None:
    global _started_at
    if phase == "start":
        _started_at = perf_counter()
    else:
        metrics.gc_paused(info["generation"], perf_counter() - _started_at)

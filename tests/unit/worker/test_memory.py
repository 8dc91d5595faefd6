"""The worker's garbage collector settings, and its pauses observed."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from orderstream.settings import Settings
from orderstream.worker import memory


@pytest.fixture
def collector() -> Iterator[None]:
    threshold, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.enable()
    gc.set_threshold(*threshold)
    gc.callbacks[:] = callbacks
    gc.unfreeze()


def _pauses(generation: int) -> float:
    value = REGISTRY.get_sample_value(
        "orderstream_gc_pause_seconds_count", {"generation": str(generation)}
    )
    return value or 0.0


def test_the_young_generation_is_collected_at_the_configured_threshold(collector: None) -> None:
    _, middle, old = gc.get_threshold()
    memory.configure(Settings(gc_young_threshold=12_345))
    assert gc.get_threshold() == (12_345, middle, old)


def test_every_collection_is_timed_once_by_its_generation(collector: None) -> None:
    memory.configure(Settings())
    memory.configure(Settings())  # configured twice: still one callback
    gc.disable()  # no automatic collection in between: the one below only
    before = [_pauses(g) for g in (0, 1, 2)]
    gc.collect(1)
    after = [_pauses(g) for g in (0, 1, 2)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [0.0, 1.0, 0.0]


def test_freezing_leaves_the_objects_alive_out_of_later_collections(collector: None) -> None:
    kept = [object() for _ in range(1000)]
    memory.freeze()
    assert gc.get_freeze_count() >= len(kept)


def test_a_worker_sets_its_collector_when_it_starts_not_when_the_app_is_imported(
    collector: None,
) -> None:
    gc.set_threshold(700, 10, 10)
    from orderstream.worker import app

    assert gc.get_threshold()[0] == 700  # imported (tests, the CLI): Python's collector
    app._set_the_collector(app.app)  # the worker's init signal
    assert gc.get_threshold()[0] == app.settings.gc_young_threshold != 700

"""Agent tests: Faust's test_context with in-memory transport and store; published events are
captured instead of sent. The environment must be set before the app module is imported."""

from __future__ import annotations

import os

os.environ["ORDERSTREAM_STORE"] = "memory://"
os.environ["ORDERSTREAM_APP_ID"] = "orderstream-agent-tests"

from types import ModuleType
from typing import Any

import pytest

from app import delivery
from app.events import Event


@pytest.fixture(autouse=True)
def fresh_partitions() -> None:
    delivery.forget()  # each test's records start at offset 0 again


def capture_publish(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[Event]:
    """What `module` publishes, captured instead of sent."""
    out: list[Event] = []

    async def capture(event: Event, *args: Any, **kwargs: Any) -> None:
        out.append(event)

    monkeypatch.setattr(module, "publish", capture)
    return out

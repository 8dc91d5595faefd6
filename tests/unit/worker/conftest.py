"""The worker's tests (agents in Faust's test_context, timers, tables): the app is built with
in-memory tables (tests/conftest.py); published events are captured instead of sent."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from orderstream.contracts.events import Event
from orderstream.faust_ext.consumer import Consumer


@pytest.fixture(autouse=True)
def every_record_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """test_context hands records straight to the agent, not through the consumer's fetch
    (whose ledger decides what may be applied: tests/unit/faust_ext/test_ledger.py): the handlers'
    own idempotency is what these tests check, with offsets they choose."""
    monkeypatch.setattr(Consumer, "may_apply", lambda self, message: True)


def capture_publish(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[Event]:
    """What `module` publishes, captured instead of sent."""
    out: list[Event] = []

    async def capture(event: Event, *args: Any, **kwargs: Any) -> None:
        out.append(event)

    monkeypatch.setattr(module, "publish", capture)
    return out

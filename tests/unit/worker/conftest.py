"""The worker's tests (agents in Faust's test_context, timers, tables): the app is built with
in-memory tables (tests/conftest.py); published events are captured instead of sent."""

from __future__ import annotations

from types import ModuleType

import pytest

from orderstream.contracts.events import Event
from orderstream.faust_ext.consumer import Consumer


@pytest.fixture(autouse=True)
def every_record_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """test_context hands records straight to the agent, not through the consumer's fetch
    (whose ledger decides what may be applied: tests/unit/faust_ext/test_ledger.py): the handlers'
    own idempotency is what these tests check, with offsets they choose."""
    monkeypatch.setattr(Consumer, "may_apply", lambda self, message: True)


class Captured(list[Event]):
    """Events published, in order; `headers`: the headers each was published with (None: the
    trace context only); `relayed`: (topic role, key, event, headers) relayed."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[dict[str, bytes] | None] = []
        self.relayed: list[tuple[str, str, Event, dict[str, bytes]]] = []

    def clear(self) -> None:
        super().clear()
        self.headers.clear()
        self.relayed.clear()


def capture_publish(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> Captured:
    """What `module` publishes (and relays, and keeps for a batch of commits, if it does),
    captured instead of sent."""
    out = Captured()

    async def capture(event: Event, headers: dict[str, bytes] | None = None) -> None:
        out.append(event)
        out.headers.append(headers)

    async def relay(
        role: str, key: str, event: Event, raw: bytes, headers: dict[str, bytes]
    ) -> None:
        out.relayed.append((role, key, event, headers))

    def keep(event: Event) -> None:  # a stock commit kept for the next flush, batched
        out.append(event)
        out.headers.append(None)

    monkeypatch.setattr(module, "publish", capture)
    batches = getattr(module, "commit_batches", None)
    if batches is not None:
        monkeypatch.setattr(batches, "add", keep)
    if hasattr(module, "relay"):
        monkeypatch.setattr(module, "relay", relay)
    return out

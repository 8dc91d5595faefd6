"""The simulated gateway's ledger: one JSON line per charge call, from any number of processes."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from orderstream.domain.payment import Charge
from orderstream.worker.gateway import (
    GatewayLedger,
    LedgerCall,
    SimulatedGateway,
    TransientGatewayError,
    read_ledger,
)


async def charge(
    gateway: SimulatedGateway, key: str, amount: float = 10.0, attempt: int = 1
) -> Charge:
    return await gateway.charge(
        order_id=key, customer_id="c-1", amount=amount, idempotency_key=key, attempt=attempt
    )


async def test_every_call_is_on_the_ledger_with_its_outcome(tmp_path: Path) -> None:
    # Given a gateway declining over 100, and one that never answers, sharing a ledger
    ledger = GatewayLedger(tmp_path / "ledger.jsonl")
    gateway = SimulatedGateway(limit_per_order=100.0, ledger=ledger)
    down = SimulatedGateway(transient_failure_rate=1.0, ledger=ledger)
    # When they are called: approved, approved again (same key), declined, unavailable
    first = await charge(gateway, "o-1")
    again = await charge(gateway, "o-1", attempt=2)
    declined = await charge(gateway, "o-2", amount=500.0)
    with pytest.raises(TransientGatewayError):
        await charge(down, "o-3")
    # Then each call is one line, in order, with what the caller was told
    calls = read_ledger(ledger.path).calls
    assert [(c.orderId, c.attempt, c.outcome, c.chargeId, c.reason) for c in calls] == [
        ("o-1", 1, "approved", first.charge_id, None),
        ("o-1", 2, "approved", first.charge_id, None),
        ("o-2", 1, "declined", None, "amount_over_limit"),
        ("o-3", 1, "unavailable", None, "timeout"),
    ]
    assert again.charge_id == first.charge_id and not declined.approved  # a replay: same charge
    assert [c.amount for c in calls] == [10.0, 10.0, 500.0, 10.0]
    assert {c.pid for c in calls} == {os.getpid()}
    assert all(c.idempotencyKey == c.orderId for c in calls)
    assert calls[0].at <= calls[-1].at


async def test_no_ledger_no_file(tmp_path: Path) -> None:
    await charge(SimulatedGateway(), "o-1")

    assert read_ledger(tmp_path / "missing.jsonl").calls == []


def _append_calls(path: Path, writer: str, n: int) -> None:
    ledger = GatewayLedger(path)
    for i in range(n):
        key = f"{writer}-{i}-" + "x" * 300  # long lines: a torn or mixed write would show
        ledger.append(LedgerCall(key, key, 1, "approved", 1.0, os.getpid(), time.time(), "ch"))


def test_concurrent_processes_append_whole_lines(tmp_path: Path) -> None:
    # Given four processes appending to one ledger at the same time
    path = tmp_path / "shared" / "ledger.jsonl"
    fork = multiprocessing.get_context("fork")
    procs = [fork.Process(target=_append_calls, args=(path, f"w{i}", 500)) for i in range(4)]
    for p in procs:
        p.start()
    # When they are done
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    # Then every call is there, whole, attributed to its process, each process's in its order
    reading = read_ledger(path)
    assert reading.torn_lines == 0
    assert len(reading.calls) == 2000
    assert {c.pid for c in reading.calls} == {p.pid for p in procs}
    for i in range(4):
        mine = [c.orderId for c in reading.calls if c.orderId.startswith(f"w{i}-")]
        assert [int(o.split("-")[1]) for o in mine] == list(range(500))


def test_a_torn_line_is_counted_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b'{"orderId": "o-1", "idem\n')

    reading = read_ledger(path)

    assert reading.calls == [] and reading.torn_lines == 1

"""Payment gateways: the interface the payment agent charges through, a simulator, and the
simulator's ledger of every charge call (what the verifier checks "charged at most once" on)."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import orjson

from orderstream.domain.payment import Charge
from orderstream.errors import OrderstreamError


class TransientGatewayError(OrderstreamError):
    """The gateway could not answer now (timeout, 5xx): the charge may be retried."""


class PaymentGateway(Protocol):
    async def charge(
        self, *, order_id: str, customer_id: str, amount: float, idempotency_key: str, attempt: int
    ) -> Charge:
        """Charge once per idempotency key; raise TransientGatewayError when it may be retried."""
        ...


def attempt_fails(idempotency_key: str, attempt: int, rate: float) -> bool:
    """Whether the simulated gateway fails this attempt transiently (deterministic)."""
    return _unit(idempotency_key, str(attempt)) < rate


def _unit(*parts: str) -> float:
    """A deterministic number in [0, 1) from the parts (stable across processes, unlike hash())."""
    digest = hashlib.blake2b("|".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# --- the ledger ------------------------------------------------------------------------------

CallOutcome = Literal["approved", "declined", "unavailable"]


@dataclass(frozen=True)
class LedgerCall:
    """One charge call as the gateway saw it. An approved call is a money movement unless an
    earlier approved call carried the same idempotency key (then it is a replay)."""

    orderId: str
    idempotencyKey: str
    attempt: int
    outcome: CallOutcome
    amount: float
    pid: int
    at: float  # unix time
    chargeId: str | None = None
    reason: str | None = None


@dataclass
class GatewayLedger:
    """An append-only JSON-lines file shared by every worker process: one line per call, written
    with one write() on an O_APPEND descriptor, so lines of concurrent processes never mix and a
    line is on file (in the page cache; a kill -9 keeps it) before the caller gets its answer."""

    path: Path
    _fd: int | None = field(default=None, init=False, repr=False, compare=False)

    def append(self, call: LedgerCall) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = orjson.dumps(asdict(call)) + b"\n"
        if os.write(self._fd, line) != len(line):
            raise OrderstreamError(f"short write to the gateway ledger {self.path}: disk full?")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class LedgerReading:
    calls: list[LedgerCall]  # in file order
    torn_lines: int = 0  # lines that are not a whole call: the ledger cannot be trusted


def read_ledger(path: Path) -> LedgerReading:
    """Every call on the ledger (none when the file does not exist yet)."""
    if not path.exists():
        return LedgerReading([])
    calls: list[LedgerCall] = []
    torn = 0
    for line in path.read_bytes().splitlines():
        try:
            calls.append(LedgerCall(**orjson.loads(line)))
        except (orjson.JSONDecodeError, TypeError):
            torn += 1
    return LedgerReading(calls, torn)


# --- the simulator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedGateway:
    """Declines by rule (amount over the limit, blocked customers); fails transiently at a
    configurable, deterministic rate so tests can rely on the outcome of every attempt.

    Like a real gateway it answers a repeat of an idempotency key with the first charge (the
    charge id derives from the key). With a ledger, every call is appended to it before the
    answer is returned."""

    limit_per_order: float = 1000.0
    declined_customers: frozenset[str] = frozenset()
    transient_failure_rate: float = 0.0
    ledger: GatewayLedger | None = None

    async def charge(
        self, *, order_id: str, customer_id: str, amount: float, idempotency_key: str, attempt: int
    ) -> Charge:
        if attempt_fails(idempotency_key, attempt, self.transient_failure_rate):
            self._log(order_id, idempotency_key, attempt, amount, "unavailable", None, "timeout")
            raise TransientGatewayError(f"simulated gateway timeout (attempt {attempt})")
        result = self._decide(customer_id, amount, idempotency_key)
        outcome: CallOutcome = "approved" if result.approved else "declined"
        self._log(
            order_id, idempotency_key, attempt, amount, outcome, result.charge_id, result.reason
        )
        return result

    def _decide(self, customer_id: str, amount: float, idempotency_key: str) -> Charge:
        if customer_id in self.declined_customers:
            return Charge(False, reason="customer_blocked")
        if amount > self.limit_per_order:
            return Charge(False, reason="amount_over_limit")
        digest = hashlib.blake2b(idempotency_key.encode(), digest_size=8).hexdigest()
        return Charge(True, charge_id=f"ch_{digest}")

    def _log(
        self,
        order_id: str,
        key: str,
        attempt: int,
        amount: float,
        outcome: CallOutcome,
        charge_id: str | None,
        reason: str | None,
    ) -> None:
        if self.ledger is not None:
            self.ledger.append(
                LedgerCall(
                    orderId=order_id,
                    idempotencyKey=key,
                    attempt=attempt,
                    outcome=outcome,
                    amount=amount,
                    pid=os.getpid(),
                    at=time.time(),
                    chargeId=charge_id,
                    reason=reason,
                )
            )

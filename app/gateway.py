"""Payment gateways: the interface the payment agent charges through, and a simulator."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from app.errors import OrderstreamError


class TransientGatewayError(OrderstreamError):
    """The gateway could not answer now (timeout, 5xx): the charge may be retried."""


@dataclass(frozen=True)
class Charge:
    approved: bool
    charge_id: str | None = None
    reason: str | None = None


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


@dataclass(frozen=True)
class SimulatedGateway:
    """Declines by rule (amount over the limit, blocked customers); fails transiently at a
    configurable, deterministic rate so tests can rely on the outcome of every attempt."""

    limit_per_order: float = 1000.0
    declined_customers: frozenset[str] = frozenset()
    transient_failure_rate: float = 0.0

    async def charge(
        self, *, order_id: str, customer_id: str, amount: float, idempotency_key: str, attempt: int
    ) -> Charge:
        if attempt_fails(idempotency_key, attempt, self.transient_failure_rate):
            raise TransientGatewayError(f"simulated gateway timeout (attempt {attempt})")
        if customer_id in self.declined_customers:
            return Charge(False, reason="customer_blocked")
        if amount > self.limit_per_order:
            return Charge(False, reason="amount_over_limit")
        digest = hashlib.blake2b(idempotency_key.encode(), digest_size=8).hexdigest()
        return Charge(True, charge_id=f"ch_{digest}")

"""The dead-letter topic's records: the original key and value, and why the worker parked them
in `x-dlq-*` headers. Written by the worker (orderstream/worker/dead_letters.py), read by
`orderstream dlq` (orderstream/ops/dead_letters.py) and the verifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orderstream.contracts.events import utcnow

HEADER_PREFIX = "x-dlq-"


@dataclass(frozen=True)
class DeadLetter:
    kind: str
    message: str
    topic: str
    partition: int
    offset: int
    attempts: int = 1

    def headers(self, app_id: str) -> list[tuple[str, bytes]]:
        fields = {
            "kind": self.kind,
            "message": self.message[:1000],
            "topic": self.topic,
            "partition": str(self.partition),
            "offset": str(self.offset),
            "attempts": str(self.attempts),
            "failed-at": utcnow().isoformat(),
            "app": app_id,
        }
        return [(HEADER_PREFIX + k, v.encode()) for k, v in fields.items()]


def parse_headers(headers: Any) -> dict[str, str]:
    """Dead-letter headers back to a dict (for `orderstream dlq` and the tests)."""
    items = headers.items() if isinstance(headers, dict) else headers or []
    return {
        k[len(HEADER_PREFIX) :]: (v.decode() if isinstance(v, bytes) else str(v))
        for k, v in items
        if k.startswith(HEADER_PREFIX)
    }

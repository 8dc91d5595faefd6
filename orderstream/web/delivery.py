"""A request that publishes answers once its own record is acknowledged by the broker."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.web.exceptions import ServiceUnavailable


async def delivered(delivery: asyncio.Future[Any]) -> None:
    """Wait for this record's acknowledgement (not a flush of everything the worker sends);
    503 when the broker did not take it: nothing was accepted, the client retries."""
    try:
        await delivery
    except Exception as exc:
        raise ServiceUnavailable(
            f"Kafka did not acknowledge the event ({type(exc).__name__}: {exc}); nothing was "
            "accepted: retry the request (the same eventId is applied once)"
        ) from None

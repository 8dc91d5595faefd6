"""The harness's one exception type."""

from __future__ import annotations

from orderstream.errors import OrderstreamError


class BenchError(OrderstreamError):
    """A run that could not finish: a process died, a wait timed out, a tool is missing."""

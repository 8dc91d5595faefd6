"""Helpers of the tests of our Faust classes."""

from __future__ import annotations

from typing import Any

import faust

from orderstream.faust_ext.transport import broker_urls


def offline_app(app_id: str, table: type[Any], **settings: Any) -> faust.App:
    """A faust.App whose tables are `table`, in memory, with a broker that is never reached."""
    broker = broker_urls("kafka://127.0.0.1:1")
    return faust.App(app_id, broker=broker, store="memory://", Table=table, **settings)

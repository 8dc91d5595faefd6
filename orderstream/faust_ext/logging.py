"""Logging for a worker: Faust's root logger left at DEBUG costs ~9% of a worker's CPU."""

from __future__ import annotations

import logging


def quiet_root_logger() -> None:
    """Faust leaves the root logger at DEBUG and filters in the handlers, so every debug call
    on the hot path (one per message sent) still builds a log record: ~9% of a worker's CPU.
    Raise the root logger to the level the handlers print at (call once the worker logs)."""
    # The terminal spinner's handler takes everything and shows none of it.
    handlers = [h for h in logging.root.handlers if type(h).__name__ != "SpinnerHandler"]
    level = min((h.level for h in handlers if h.level), default=logging.INFO)
    if logging.root.level < level:
        logging.root.setLevel(level)

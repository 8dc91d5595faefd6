"""Faust's stream, iterated by its Python loop.

Faust's compiled stream loop (faust/_cython/streams.pyx `after`) acks a record by writing into
the consumer's offset lists itself, past `Consumer.ack`: a record it acks would never reach the
record ledger (orderstream/faust_ext/ledger.py), and nothing would ever be committed. The Python
loop acks through `Event.ack` -> `Consumer.ack`, the one place the ledger hears of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import faust


class Stream(faust.Stream[Any]):
    def __aiter__(self) -> AsyncIterator[Any]:
        it = self._py_aiter()
        self._active_agens.add(cast(Any, it))
        return it

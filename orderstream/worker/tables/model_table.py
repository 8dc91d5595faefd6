"""A changelog-backed table of JSON models, remembering the models it decoded last.

Every step reads its key's state, decides and writes it back; the same keys come again and again
(a product's stock for each of its order lines, an order's state at each saga step). Parsing the
JSON again each time was the biggest single cost in the worker's profile. The memo is keyed by
the stored bytes themselves, so it can never answer with a stale model: a value written by a
recovery, a rebalance or another worker differs in its bytes and is parsed again. Models are
immutable (frozen, and no rule changes a field in place), so handing the same one out is safe;
for the same reason a put of the very model an earlier put encoded (a step that found its
record already applied writes its state again) reuses those bytes instead of encoding it again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Generic, TypeVar

from orderstream.domain.state import State, decoder, encode_state
from orderstream.worker import chaos

M = TypeVar("M", bound=State)


class ModelTable(Generic[M]):
    def __init__(self, table: Any, model: type[M], remember: int = 2048) -> None:
        # `table`: the Faust table, bytes -> bytes; write_through / write_back tables read and
        # write those without Faust's layers (a plain mapping stands for one in agent tests)
        self._get_raw = getattr(table, "get_raw", table.get)
        self._put_raw = getattr(table, "put_raw", table.__setitem__)
        self._decode = decoder(model).decode
        self.remember = remember
        # key -> (stored bytes, their model, whether the bytes are this code's encoding of it)
        self._memo: OrderedDict[bytes, tuple[bytes, M, bool]] = OrderedDict()

    def get(self, key: str) -> M | None:
        k = key.encode()
        raw = self._get_raw(k)
        if raw is None:
            return None
        hit = self._memo.get(k)
        if hit is not None and hit[0] == raw:
            self._memo.move_to_end(k)
            return hit[1]
        model = self._decode(raw)
        self._keep(k, raw, model, encoded=False)  # maybe another version's or field order
        return model

    def put(self, key: str, model: M) -> None:
        k = key.encode()
        hit = self._memo.get(k)
        # this very model, encoded by an earlier put: the same bytes
        raw = hit[0] if hit is not None and hit[1] is model and hit[2] else encode_state(model)
        chaos.store_write()
        self._put_raw(k, raw)
        self._keep(k, raw, model, encoded=True)

    def _keep(self, key: bytes, raw: bytes, model: M, *, encoded: bool) -> None:
        self._memo[key] = (raw, model, encoded)
        self._memo.move_to_end(key)
        if len(self._memo) > self.remember:
            self._memo.popitem(last=False)

"""The base of every stored state (the saga's orders, the stock, the payments, the read
models): a frozen msgspec Struct, encoded to and decoded from the JSON the tables keep.

Events are Structs too (orderstream/contracts/events.py), with the checks of a contract with
producers we did not write. A state is written and read by this code only, once or more per
record on the hot path: a Struct encodes it ~4 times, decodes it ~3 times and copies it with
changes ~14 times faster than the pydantic model of the same shape the versions before used, to
the same JSON (fields in declaration order, None as null, datetimes in RFC 3339), so states
stored by either read the same. Unknown fields are ignored (a newer version's state
reads), fields missing take their defaults (an older version's), a wrong type is an error.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

S = TypeVar("S", bound="State")


class State(msgspec.Struct, frozen=True, kw_only=True):
    """A frozen state: `replace` gives a changed copy."""


def replace(state: S, **changes: Any) -> S:
    """A copy of `state` with `changes` (no validation: the rules build valid states)."""
    return msgspec.structs.replace(state, **changes)


_ENCODER = msgspec.json.Encoder()
encode_state = _ENCODER.encode


def decoder(cls: type[S]) -> msgspec.json.Decoder[S]:
    """A decoder of `cls` from its stored JSON (raises msgspec.ValidationError)."""
    return msgspec.json.Decoder(cls)


def decode_state(raw: bytes | str, cls: type[S]) -> S:
    return msgspec.json.decode(raw, type=cls)


def as_dict(state: State) -> dict[str, Any]:
    """The state as JSON-ready builtins (datetimes as RFC 3339 strings), nested states too."""
    out: dict[str, Any] = msgspec.to_builtins(state)
    return out

"""Which records of each partition were handed to the agents, and which of them are done.

Kafka offsets are not contiguous: transaction markers, aborted transactions' records and
compacted or deleted ranges take offsets that no consumer ever sees. So whether a commit may
pass an offset is decided by the records themselves, never by offset arithmetic: per partition,
the records admitted for delivery, in fetch order, each pending until its agents are done. The
offset to commit is the first pending record's, or one past the last done record's.

A partition breaks at a record that was fetched but not processed (its delivery was abandoned,
its agents dropped it, or processing it failed): records from there on are refused until the
partition is rewound (the consumer seeks back to the broken record), so nothing is ever applied
past a record that was not, and nothing is committed over one. Pure bookkeeping: no Faust, no
Kafka, no clock of its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Entry:
    offset: int
    token: object  # the message object: an ack of an older fetch of this offset is not ours
    done: bool = False


@dataclass(slots=True)
class _Partition:
    entries: deque[_Entry] = field(default_factory=deque)
    index: dict[int, _Entry] = field(default_factory=dict)
    floor: int = 0  # records below it are stale (from before a seek)
    exact: bool = False  # after a rewind: the next record admitted must be `floor` itself
    done_upto: int | None = None  # one past the last done record popped off the front
    broken: int | None = None  # the first record that was not processed
    broken_because: str = ""
    retry_at: float = 0.0  # when the partition may be rewound (a clock the caller owns)


class Ledger(Generic[K]):
    """Per-partition record ledger (see the module doc); partitions are any hashable key."""

    def __init__(self) -> None:
        self._parts: dict[K, _Partition] = {}

    def _part(self, tp: K) -> _Partition:
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = _Partition()
        return part

    def admit(self, tp: K, offset: int, token: object) -> bool:
        """Whether a fetched record may be handed to the agents now (then it is pending)."""
        part = self._parts.get(tp) or self._part(tp)  # per record: the common case inline
        if part.broken is not None or offset < part.floor:
            return False  # past a record that was not processed, or stale
        if part.exact and offset != part.floor:
            return False  # fetched before the rewind: the broken record must come first
        entry = _Entry(offset, token)
        part.entries.append(entry)
        part.index[offset] = entry
        part.floor, part.exact = offset + 1, False
        return True

    def _entry(self, tp: K, offset: int, token: object) -> tuple[_Partition, _Entry] | None:
        """This fetch of the record, if it is pending in the ledger (not an earlier fetch)."""
        part = self._parts.get(tp)
        entry = part.index.get(offset) if part is not None else None
        if part is None or entry is None or entry.token is not token:
            return None
        return part, entry

    def is_current(self, tp: K, offset: int, token: object) -> bool:
        """Whether this record is pending in the ledger and no record before it broke."""
        # _entry inline: this and `done` run for every record
        part = self._parts.get(tp)
        entry = part.index.get(offset) if part is not None else None
        if part is None or entry is None or entry.token is not token:
            return False
        return part.broken is None or offset < part.broken

    def holds(self, tp: K, offset: int, token: object) -> bool:
        """Whether this fetch of the record is pending in the ledger (not an earlier fetch)."""
        return self._entry(tp, offset, token) is not None

    def done(self, tp: K, offset: int, token: object) -> bool:
        """Mark a record processed (an ack of a stale fetch changes nothing)."""
        part = self._parts.get(tp)
        entry = part.index.get(offset) if part is not None else None
        if part is None or entry is None or entry.token is not token:
            return False
        if part.broken is not None and offset >= part.broken:
            return False  # not processed: the rewind brings it again
        entry.done = True
        return True

    def break_at(self, tp: K, offset: int, reason: str, *, retry_at: float = 0.0) -> bool:
        """Record `offset` of `tp` as not processed; True when that newly broke the partition."""
        part = self._part(tp)
        if part.broken is not None and part.broken <= offset:
            return False
        part.broken, part.broken_because, part.retry_at = offset, reason, retry_at
        return True

    def left_behind(self, tp: K, offset: int, reason: str) -> bool:
        """A fetched record that was not handed over: the partition breaks at it if the ledger
        would have admitted it (a stale one, below the floor or fetched before a rewind,
        changes nothing). True when that newly broke the partition."""
        part = self._part(tp)
        if offset < part.floor or (part.exact and offset != part.floor):
            return False
        return self.break_at(tp, offset, reason)

    def broken(self) -> dict[K, tuple[int, str, float]]:
        """Broken partitions: (first record not processed, why, when it may be rewound)."""
        return {
            tp: (p.broken, p.broken_because, p.retry_at)
            for tp, p in self._parts.items()
            if p.broken is not None
        }

    def rewind(self, tp: K, offset: int) -> None:
        """The consumer was sought back to `offset` (a record it fetched before): records from
        it on are forgotten and the next one admitted must be that record."""
        part = self._part(tp)
        while part.entries and part.entries[-1].offset >= offset:
            del part.index[part.entries.pop().offset]
        part.broken, part.broken_because, part.retry_at = None, "", 0.0
        part.floor, part.exact = offset, True

    def reset(self, tp: K, committed: int | None) -> None:
        """The consumer was sought to the committed offset: nothing pending, anything from
        `committed` on may come (the committed offset may be a transaction marker's)."""
        self._parts[tp] = _Partition(floor=committed or 0)

    def drop(self, tp: K) -> None:
        self._parts.pop(tp, None)

    def partitions(self) -> list[K]:
        return list(self._parts)

    def commit_offset(self, tp: K) -> int | None:
        """The offset a commit of `tp` may move to: the first record not done, or one past the
        last record done when all are (None when nothing was done since the last call)."""
        part = self._parts.get(tp)
        if part is None:
            return None
        entries, index = part.entries, part.index
        while entries and entries[0].done:
            entry = entries.popleft()
            del index[entry.offset]
            part.done_upto = entry.offset + 1
        return entries[0].offset if entries else part.done_upto

    def next_offset(self, tp: K) -> int:
        """The lowest offset the partition may admit next."""
        part = self._parts.get(tp)
        return 0 if part is None else part.floor

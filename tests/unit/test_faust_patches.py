"""The commit-over-a-hole fix: records Faust fetched but never delivered are never committed."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from intervaltree import IntervalTree

from app import faust_patches

TP0 = TP("order-events", 0)


def consumer(committed: int | None, acked: list[int]) -> Any:
    return SimpleNamespace(
        _acked=defaultdict(list, {TP0: list(acked)}),
        _acked_index=defaultdict(set, {TP0: set(acked)}),
        _committed_offset=defaultdict(lambda: None, {TP0: committed}),
        _gap=defaultdict(IntervalTree),
    )


def test_contiguous_acks_commit_as_faust_does() -> None:
    c = consumer(committed=10, acked=[10, 11, 12])
    assert faust_patches.hole(c, TP0) is None
    assert faust_patches._new_offset(c, TP0) == 13


@pytest.mark.parametrize("first_acked", [11, 15])
def test_no_commit_over_records_never_acknowledged(first_acked: int) -> None:
    # Faust itself would commit 14 when the first acked offset is 11 (one past the committed 10)
    c = consumer(committed=10, acked=list(range(first_acked, first_acked + 3)))
    assert faust_patches.hole(c, TP0) == (10, first_acked)
    assert faust_patches._new_offset(c, TP0) is None


async def test_a_jump_is_reported_not_acknowledged() -> None:
    c = consumer(committed=10, acked=[])
    faust_patches.reported.clear()
    await faust_patches._report_gap(c, TP0, 11, 20)  # offsets 11..19 never delivered
    assert TP0 in faust_patches.reported
    assert len(c._gap[TP0]) == 0  # Faust would have marked 11..20 as done
    faust_patches.reported.clear()


def test_applied_to_faust() -> None:
    from faust.transport.consumer import Consumer

    import app.application  # noqa: F401  (applies the patches)

    assert Consumer._add_gap is faust_patches._report_gap
    assert Consumer._new_offset is faust_patches._new_offset

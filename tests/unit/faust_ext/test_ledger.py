"""The record ledger (orderstream/faust_ext/ledger.py): commits move over records processed,
whatever offsets lie between them, and never over a record that was not processed."""

from __future__ import annotations

from orderstream.faust_ext.ledger import Ledger

TP = ("orders", 0)


def admitted(ledger: Ledger[tuple[str, int]], *offsets: int) -> list[object]:
    tokens = [object() for _ in offsets]
    for offset, token in zip(offsets, tokens, strict=True):
        assert ledger.admit(TP, offset, token)
    return tokens


def test_offsets_without_records_are_not_holes() -> None:
    # Given records of two transactions: offsets 3 and 6 are commit markers, never fetched
    ledger: Ledger[tuple[str, int]] = Ledger()
    ledger.reset(TP, 0)
    offsets = (0, 1, 2, 4, 5, 7)
    tokens = admitted(ledger, *offsets)
    # When all are processed
    for offset, token in zip(offsets, tokens, strict=True):
        assert ledger.done(TP, offset, token)
    # Then the commit moves past the last record (the markers between count for nothing)
    assert ledger.commit_offset(TP) == 8


def test_the_commit_stops_at_the_first_record_not_done() -> None:
    ledger: Ledger[tuple[str, int]] = Ledger()
    ledger.reset(TP, 10)
    tokens = admitted(ledger, 10, 12, 13)
    ledger.done(TP, 10, tokens[0])
    ledger.done(TP, 13, tokens[2])  # 12 still being processed
    assert ledger.commit_offset(TP) == 12
    ledger.done(TP, 12, tokens[1])
    assert ledger.commit_offset(TP) == 14


def test_nothing_processed_commits_nothing() -> None:
    ledger: Ledger[tuple[str, int]] = Ledger()
    ledger.reset(TP, 5)
    assert ledger.commit_offset(TP) is None


def test_a_record_not_processed_breaks_the_partition_until_it_is_rewound() -> None:
    ledger: Ledger[tuple[str, int]] = Ledger()
    ledger.reset(TP, 0)
    t0, t1, t2 = admitted(ledger, 0, 1, 2)
    # When record 1 fails (its agent acks it all the same: Faust acks after each step)
    assert ledger.break_at(TP, 1, "store failed")
    ledger.done(TP, 0, t0)
    assert not ledger.done(TP, 1, t1)
    ledger.done(TP, 2, t2)
    # Then later records are neither applied nor admitted, and the commit stops at 1
    assert ledger.is_current(TP, 0, t0)
    assert not ledger.is_current(TP, 2, t2)
    assert not ledger.admit(TP, 3, object())
    assert ledger.commit_offset(TP) == 1
    assert ledger.broken() == {TP: (1, "store failed", 0.0)}
    # When the consumer is sought back to 1: records fetched before the seek are refused until
    # record 1 itself comes again, then everything after it
    ledger.rewind(TP, 1)
    assert not ledger.admit(TP, 3, object())  # from the batch fetched before the seek
    t1b, t2b = object(), object()
    assert ledger.admit(TP, 1, t1b)
    assert ledger.admit(TP, 2, t2b)
    ledger.done(TP, 1, t1b)
    ledger.done(TP, 2, t2b)
    assert ledger.commit_offset(TP) == 3
    assert ledger.broken() == {}


def test_an_ack_of_an_earlier_fetch_of_the_same_offset_changes_nothing() -> None:
    ledger: Ledger[tuple[str, int]] = Ledger()
    ledger.reset(TP, 0)
    (stale,) = admitted(ledger, 0)
    ledger.reset(TP, 0)  # a seek to the committed offset: fetched again
    (fresh,) = admitted(ledger, 0)
    assert not ledger.done(TP, 0, stale)
    assert not ledger.is_current(TP, 0, stale)
    assert ledger.commit_offset(TP) == 0  # the fresh fetch is still pending
    assert ledger.done(TP, 0, fresh)
    assert ledger.commit_offset(TP) == 1


def test_records_before_the_committed_offset_are_stale() -> None:
    ledger: Ledger[tuple[str, int]] = Ledger()
    ledger.reset(TP, 100)
    assert not ledger.admit(TP, 99, object())
    assert ledger.admit(TP, 102, object())  # 100 and 101 were a transaction's marker and such


def test_the_first_break_wins() -> None:
    ledger: Ledger[tuple[str, int]] = Ledger()
    ledger.reset(TP, 0)
    admitted(ledger, 0, 1, 2)
    assert ledger.break_at(TP, 2, "later")
    assert ledger.break_at(TP, 1, "earlier")
    assert not ledger.break_at(TP, 2, "again")
    assert ledger.broken()[TP][:2] == (1, "earlier")

"""Fails when faust-streaming code that orderstream/faust_ext overrides or copies changes: review
our class against the new code, then update the hash in orderstream/faust_ext/OVERRIDES."""

from __future__ import annotations

import pytest

from orderstream.faust_ext import OVERRIDES, source_hash


@pytest.mark.parametrize("ref", sorted(OVERRIDES))
def test_the_faust_code_we_override_is_unchanged(ref: str) -> None:
    assert source_hash(ref) == OVERRIDES[ref], (
        f"{ref} changed in the installed faust-streaming: review orderstream/faust_ext against it"
    )


def test_every_override_is_listed() -> None:
    from orderstream.faust_ext import consumer, producer, tables, transactions

    ours = {
        f"{cls.__name__}.{name}"
        for module in (consumer, producer, tables, transactions)
        for cls in vars(module).values()
        if isinstance(cls, type) and cls.__module__ == module.__name__
        for name in vars(cls)
        if not name.startswith("__") or name == "__init__"
    }
    listed = {ref.split(":")[1].split(".", 1)[1] for ref in OVERRIDES}
    faust_names = {
        "ack", "_new_offset", "_filter_tps_with_pending_acks", "_drain_messages", "getmany",
        "perform_seek", "on_buffer_drop", "_commit", "_create_worker_consumer",
        "_new_consumer_thread", "send", "__init__", "flush", "_send_pending", "put",
        "on_start", "recovery", "_slurp_changelogs", "_build_offsets", "on_partitions_revoked",
        "__post_init__", "commit", "on_rebalance", "_highwaters",
    }  # fmt: skip
    overridden = {n.split(".", 1)[1] for n in ours} & faust_names
    assert overridden <= listed | {"on_partitions_revoked", "__post_init__", "Consumer", "Producer"}

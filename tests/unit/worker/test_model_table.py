"""The model table's memo: a repeated read of unchanged bytes is not parsed again, and a value
changed behind its back (recovery, rebalance, another writer) is never answered from memory."""

from __future__ import annotations

from orderstream.domain.state import State, decode_state, encode_state
from orderstream.worker.tables.model_table import ModelTable


class Thing(State, frozen=True, kw_only=True):
    name: str
    n: int = 0


def test_an_unchanged_value_is_parsed_once() -> None:
    raw: dict[bytes, bytes] = {b"a": b'{"name": "a", "n": 1}'}
    table = ModelTable(raw, Thing)

    first = table.get("a")

    assert first == Thing(name="a", n=1)
    assert table.get("a") is first
    assert table.get("missing") is None


def test_a_put_is_stored_as_json_and_remembered() -> None:
    raw: dict[bytes, bytes] = {}
    table = ModelTable(raw, Thing)
    thing = Thing(name="b", n=2)

    table.put("b", thing)

    assert decode_state(raw[b"b"], Thing) == thing
    assert table.get("b") is thing


def test_a_value_changed_behind_its_back_is_parsed_again() -> None:
    raw: dict[bytes, bytes] = {}
    table = ModelTable(raw, Thing)
    table.put("c", Thing(name="c", n=1))

    raw[b"c"] = encode_state(Thing(name="c", n=5))  # e.g. a changelog recovery

    got = table.get("c")
    assert got is not None and got.n == 5
    del raw[b"c"]
    assert table.get("c") is None


def test_it_remembers_a_bounded_number_of_keys_the_least_recent_go_first() -> None:
    raw: dict[bytes, bytes] = {}
    table = ModelTable(raw, Thing, remember=2)
    for name in "xyz":
        table.put(name, Thing(name=name))

    assert list(table._memo) == [b"y", b"z"]
    table.get("y")
    table.put("w", Thing(name="w"))
    assert list(table._memo) == [b"y", b"w"]


def test_remember_zero_parses_every_time() -> None:
    raw: dict[bytes, bytes] = {b"a": b'{"name": "a"}'}
    table = ModelTable(raw, Thing, remember=0)

    first = table.get("a")

    assert first == table.get("a") and table.get("a") is not first
    assert not table._memo


def test_a_put_of_the_model_it_encoded_last_writes_the_same_bytes_without_encoding() -> None:
    raw: dict[bytes, bytes] = {}
    table = ModelTable(raw, Thing)
    thing = Thing(name="d", n=1)
    table.put("d", thing)
    first = raw[b"d"]

    table.put("d", thing)  # e.g. a redelivered record writes its state again

    assert raw[b"d"] is first
    table.put("d", Thing(name="d", n=1))  # an equal model, not the same one: encoded again
    assert raw[b"d"] == first and raw[b"d"] is not first


def test_a_model_read_from_foreign_bytes_is_encoded_again_when_put() -> None:
    # Given bytes another version wrote (other field order, a default left out)
    raw: dict[bytes, bytes] = {b"e": b'{"n": 3, "name": "e"}'}
    table = ModelTable(raw, Thing)
    thing = table.get("e")
    assert thing is not None

    table.put("e", thing)

    assert raw[b"e"] == encode_state(thing) == b'{"name":"e","n":3}'

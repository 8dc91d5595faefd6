"""Backward compatibility of the event contracts: a schema may only change so that every message
its released version accepted is still accepted, field for field.

Released versions are frozen in schemas/released/<Event>.v<N>.json (never edited). Breaking:
removing a field, a new required field, a changed or narrowed type, a narrowed enum or const,
tighter bounds, a new pattern or format, closing additionalProperties. Adding an optional field,
widening a type (integer -> number, X -> X | null) or an enum is fine.

    python -m orderstream.contracts.schema_compat            check schemas/ against released/
    python -m orderstream.contracts.schema_compat --release  freeze the versions not yet released
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orderstream.contracts.schemas import SCHEMA_DIR

RELEASED_DIR = SCHEMA_DIR / "released"
# Versions that broke on purpose, with the upcaster that reads the old shape
# (orderstream.contracts.events).
RESHAPED: dict[tuple[str, int], str] = {
    ("OrderPlaced", 2): "v1 is the seed's flat shape; upcast_v1 turns it into the v2 envelope",
}

Schema = dict[str, Any]
_NAME = re.compile(r"^(?P<event>[A-Za-z]+)\.v(?P<version>\d+)\.json$")
# Keywords whose larger value accepts less, and those whose smaller value accepts less.
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


@dataclass(frozen=True)
class _Side:
    """One schema node and the document its $refs resolve in."""

    node: Schema
    root: Schema

    def resolved(self) -> _Side:
        node, seen = self.node, 0
        while "$ref" in node and seen < 32:
            ref = str(node["$ref"])
            if not ref.startswith("#/"):
                raise ValueError(f"only local $refs are supported, not {ref!r}")
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part]
            node, seen = target, seen + 1
        return _Side(node, self.root)

    def branches(self) -> list[_Side]:
        alternatives = self.node.get("anyOf") or self.node.get("oneOf")
        if alternatives:
            return [_Side(b, self.root).resolved() for b in alternatives]
        return [self]


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every way `new` refuses a message `old` accepted, as 'path: what changed' lines."""
    return list(_compare(_Side(old, old).resolved(), _Side(new, new).resolved(), "$"))


def _compare(old: _Side, new: _Side, path: str) -> Iterator[str]:
    olds, news = old.branches(), new.branches()
    if len(olds) > 1 or len(news) > 1:
        for branch in olds:  # each old alternative must fit one new alternative
            tries = [list(_compare_node(branch, b, path)) for b in news]
            if all(tries):
                yield from min(tries, key=len)
        return
    yield from _compare_node(old, new, path)


def _compare_node(old: _Side, new: _Side, path: str) -> Iterator[str]:
    o, n = old.node, new.node
    yield from _types(o, n, path)
    yield from _values(o, n, path)
    for key in _LOWER_BOUNDS:
        if key in n and (key not in o or n[key] > o[key]):
            yield f"{path}: {key} raised from {o.get(key, 'none')} to {n[key]}"
    for key in _UPPER_BOUNDS:
        if key in n and (key not in o or n[key] < o[key]):
            yield f"{path}: {key} lowered from {o.get(key, 'none')} to {n[key]}"
    for key in ("pattern", "format"):
        if key in n and n[key] != o.get(key):
            yield f"{path}: {key} changed from {o.get(key, 'none')!r} to {n[key]!r}"
    yield from _properties(old, new, path)
    if "items" in o and "items" in n:
        items = (_Side(o["items"], old.root).resolved(), _Side(n["items"], new.root).resolved())
        yield from _compare(*items, f"{path}[]")


def _type_set(node: Schema) -> set[str] | None:
    """The JSON types a node allows (None: any)."""
    if "type" in node:
        kind = node["type"]
        return {kind} if isinstance(kind, str) else set(kind)
    if "const" in node:
        return {_JSON_TYPES.get(type(node["const"]), "object")}
    return None


def _types(o: Schema, n: Schema, path: str) -> Iterator[str]:
    old, new = _type_set(o), _type_set(n)
    if new is None:
        return
    if old is None:
        yield f"{path}: now restricted to type {sorted(new)}"
        return
    widened = new | ({"integer"} if "number" in new else set())
    if not old <= widened:
        yield f"{path}: type changed from {sorted(old)} to {sorted(new)}"


def _value_set(node: Schema) -> list[Any] | None:
    if "const" in node:
        return [node["const"]]
    if "enum" in node:
        return list(node["enum"])
    return None


def _values(o: Schema, n: Schema, path: str) -> Iterator[str]:
    old, new = _value_set(o), _value_set(n)
    if new is None:
        return
    if old is None:
        yield f"{path}: now restricted to the values {new}"
        return
    removed = [v for v in old if v not in new]
    if removed:
        yield f"{path}: values no longer allowed: {removed}"


def _properties(old: _Side, new: _Side, path: str) -> Iterator[str]:
    o, n = old.node, new.node
    old_props, new_props = o.get("properties", {}), n.get("properties", {})
    for name, schema in old_props.items():
        if name not in new_props:
            yield f"{path}.{name}: field removed"
            continue
        pair = (_Side(schema, old.root).resolved(), _Side(new_props[name], new.root).resolved())
        yield from _compare(*pair, f"{path}.{name}")
    for name in sorted(set(n.get("required", ())) - set(o.get("required", ()))):
        was = "optional" if name in old_props else "new"
        yield f"{path}.{name}: {was} field is now required"
    if n.get("additionalProperties") is False and o.get("additionalProperties") is not False:
        yield f"{path}: additional properties are no longer allowed"


# --- the committed files ---------------------------------------------------------------------


def parse_name(name: str) -> tuple[str, int]:
    """'OrderConfirmed.v3.json' -> ('OrderConfirmed', 3)."""
    found = _NAME.match(name)
    if found is None:
        raise ValueError(f"{name} is not named <Event>.v<N>.json")
    return found["event"], int(found["version"])


def _load(path: Path) -> Schema:
    data: Schema = json.loads(path.read_text(encoding="utf-8"))
    return data


def check(current_dir: Path = SCHEMA_DIR, released_dir: Path = RELEASED_DIR) -> list[str]:
    """Problems with the committed schemas: a current schema that breaks its released version,
    a released version that breaks the one before it (unless RESHAPED), an unreleased version."""
    released = {parse_name(p.name): p for p in sorted(released_dir.glob("*.json"))}
    problems: list[str] = []
    for path in sorted(current_dir.glob("*.json")):
        event, version = parse_name(path.name)
        frozen = released.get((event, version))
        if frozen is None:
            problems.append(
                f"{path.name} is not released: "
                "run python -m orderstream.contracts.schema_compat --release"
            )
            continue
        problems += [f"{path.name}: {c}" for c in breaking_changes(_load(frozen), _load(path))]
    for (event, version), path in sorted(released.items()):
        before = released.get((event, version - 1))
        if before is None or (event, version) in RESHAPED:
            continue
        problems += [
            f"{path.name} breaks v{version - 1}: {c}"
            for c in breaking_changes(_load(before), _load(path))
        ]
    return problems


def release(current_dir: Path = SCHEMA_DIR, released_dir: Path = RELEASED_DIR) -> list[Path]:
    """Freeze every current schema whose version has no released copy yet (never overwrites)."""
    released_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(current_dir.glob("*.json")):
        target = released_dir / path.name
        if not target.exists():
            target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--release"]:
        for path in release():
            print(f"released {path.name}")
    problems = check()
    for line in problems:
        print(line)
    print(f"{len(problems)} compatibility problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

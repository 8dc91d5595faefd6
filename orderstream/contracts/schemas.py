"""The event contracts as JSON Schema files in schemas/, generated from the models in
orderstream.contracts.events.

After changing an event model, run `python -m orderstream.contracts.schemas` and commit the result;
a unit test fails while the committed files and the models disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from orderstream.contracts.events import json_schemas

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def render(schema: dict[str, Any]) -> str:
    """One schema as the committed text: the dialect declared, sorted keys, 2-space indent."""
    return json.dumps({"$schema": DIALECT, **schema}, indent=2, sort_keys=True) + "\n"


def rendered_schemas() -> dict[str, str]:
    """File name -> file text for every schema the models define now."""
    return {name: render(schema) for name, schema in sorted(json_schemas().items())}


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into `directory` (created if missing); return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in rendered_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else SCHEMA_DIR
    paths = write_schemas(directory)
    stale = sorted({p.name for p in directory.glob("*.json")} - {p.name for p in paths})
    print(f"wrote {len(paths)} schemas to {directory}")
    for name in stale:
        print(f"  {name} is no longer generated: delete it unless producers still send it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The package's layout holds: nothing outside the worker (and its web views) imports the worker
or the development tools, importing it builds no Faust app, and the domain rules import nothing
but the contracts."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from orderstream.errors import OrderstreamError
from orderstream.ops import cli

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "orderstream"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Modules `path` imports (at module level only, or anywhere in it)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
            found.add(node.module)
    return found


def test_nothing_outside_the_worker_imports_it_or_the_devtools_at_import() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if _module(path).startswith(("orderstream.worker", "orderstream.web")):
            continue
        for name in _imports(path, top_level_only=True):
            if name.startswith(("orderstream.worker", "orderstream.web", "devtools")):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders


def test_the_domain_imports_only_the_contracts_and_the_errors() -> None:
    allowed = ("orderstream.domain", "orderstream.contracts", "orderstream.errors")
    offenders = []
    for path in sorted((PACKAGE / "domain").rglob("*.py")):
        for name in _imports(path, top_level_only=False):
            if name.startswith("orderstream") and not name.startswith(allowed):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
            if name.split(".")[0] in {"faust", "mode", "aiokafka"}:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders


def test_importing_outside_the_worker_builds_no_app() -> None:
    modules = sorted(
        _module(path)
        for path in PACKAGE.rglob("*.py")
        if not _module(path).startswith(("orderstream.worker", "orderstream.web"))
    )
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'orderstream.worker.app'"
        " or m.startswith('devtools')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert len(modules) > 20  # the scan itself works


def test_a_development_command_outside_a_checkout_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An install from the wheel (the image): no devtools importable, none next to the package
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "orderstream" / "ops" / "cli.py"))
    with pytest.raises(OrderstreamError, match="`orderstream demo` is a development command"):
        cli.need_devtools("demo")

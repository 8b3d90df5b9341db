"""The arrows between layers point one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PURE_CORE = [
    "_rules.py",
    "_merge.py",
    "_response.py",
    "_part.py",
    "_ids.py",
    "_errors.py",
    "_transport.py",
    "_statuses.py",
    "_cache_control.py",
    "_rate_limit.py",
]


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
    return found


def test_the_embedded_library_does_not_load_the_server_side() -> None:
    code = (
        "import sys, aggregator\n"
        "loaded = [m for m in ('aiohttp.web', 'prometheus_client', 'rich') if m in sys.modules]\n"
        "print(loaded)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("module", PURE_CORE)
def test_the_core_does_no_io(module: str) -> None:
    forbidden = {"asyncio", "aiohttp", "time", "logging", "socket", "cachetools", "random"}
    imported = imports_of(ROOT / "aggregator" / module)
    used = {name.split(".")[0] for name in imported}
    assert used & forbidden == set()
    assert not imported & {"._http_client", "._participant", "._cache", "._aggregator"}


def test_contracts_depend_on_pydantic_and_the_standard_library_only() -> None:
    allowed = {*sys.stdlib_module_names, "pydantic", "", "__future__"}
    for path in (ROOT / "contracts").glob("*.py"):
        roots = {name.split(".")[0] for name in imports_of(path) if not name.startswith(".")}
        if path.name == "testing.py":
            roots -= {"pytest"}  # imported only when a team's suite uses it
        assert roots <= allowed, (path.name, roots - allowed)

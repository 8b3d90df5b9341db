"""The arrows between layers point one way: contracts <- core <- gateway <- CLI.

The reference participants stand on the contracts alone; the demo sits on top of
everything. The gateway uses the core's public names (``from aggregator import
...``), never its private modules; the CLI reaches the demo and the participants
only through entry points, found at run time.
"""

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
    "_stage.py",
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
    assert not imported & {"._http_client", "._pipeline", "._cache", "._aggregator"}


def test_contracts_depend_on_pydantic_and_the_standard_library_only() -> None:
    allowed = {*sys.stdlib_module_names, "pydantic", "", "__future__"}
    for path in (ROOT / "contracts").glob("*.py"):
        roots = {name.split(".")[0] for name in imports_of(path) if not name.startswith(".")}
        if path.name == "testing.py":
            roots -= {"pytest"}  # imported only when a team's suite uses it
        assert roots <= allowed, (path.name, roots - allowed)


PACKAGES = ("contracts", "aggregator", "participants", "demo")
# What each layer may import, by layer. "core-public" is ``aggregator`` itself: the
# names its ``__init__`` exports; "gateway-public" likewise ``aggregator.gateway``.
MAY_IMPORT = {
    "contracts": {"contracts"},
    "core": {"contracts", "core", "core-public"},
    "gateway": {"contracts", "core-public", "gateway", "gateway-public"},
    "cli": {"contracts", "core", "core-public", "gateway-public", "cli"},
    "participants": {"contracts", "participants"},
    "demo": {"contracts", "core-public", "gateway-public", "participants", "demo"},
}


def layer_of(module: str) -> str | None:
    """The layer of a module of ours (dotted name), None for anyone else's."""
    parts = module.split(".")
    if parts[0] == "aggregator":
        if module == "aggregator":
            return "core-public"
        if parts[1] in ("_cli", "_watch_cli", "_contract_cli", "__main__"):
            return "cli"
        if parts[1] == "gateway":
            return "gateway-public" if len(parts) == 2 else "gateway"
        return "core"
    return parts[0] if parts[0] in PACKAGES else None


def home_layer(module: str) -> str | None:
    """The layer a module belongs to (a package's ``__init__`` to its package)."""
    layer = layer_of(module)
    return {"core-public": "core", "gateway-public": "gateway"}.get(layer or "", layer)


def absolute_imports(module: str, source: str, *, package: bool) -> set[str]:
    """Every module ``source`` imports, anywhere in it (in functions too), by its
    dotted name; relative imports resolved against ``module``. A name imported from
    a package counts as its module too when private (``from aggregator import
    _answer``), and ``importlib.import_module("x")`` with a literal counts as
    ``import x``."""
    here = module.split(".") if package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.add(target)
            found.update(
                f"{target}.{alias.name}"
                for alias in node.names
                if node.module is None
                or (alias.name.startswith("_") and not alias.name.startswith("__"))
            )
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def backward_imports(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """``importer -> imported`` for each import against the arrows; ``sources`` maps
    a module's dotted name to its source and whether it is a package's ``__init__``."""
    found = []
    for module, (source, package) in sorted(sources.items()):
        layer = home_layer(module)
        if layer is None:
            continue
        for imported in sorted(absolute_imports(module, source, package=package)):
            target = layer_of(imported)
            if target is not None and target not in MAY_IMPORT[layer]:
                found.append(f"{module} ({layer}) -> {imported} ({target})")
    return found


def our_sources() -> dict[str, tuple[str, bool]]:
    sources = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            is_init = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_init else parts)
            sources[name] = (path.read_text(), is_init)
    return sources


def test_every_import_follows_the_arrows() -> None:
    assert backward_imports(our_sources()) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        # the core starting the demo, as the CLI once did from inside a function
        (
            "aggregator._cli",
            "def main():\n    from demo import main\n",
            "aggregator._cli (cli) -> demo (demo)",
        ),
        ("aggregator._merge", "import participants._store", "participants._store (participants)"),
        ("aggregator._cache", "from .gateway import create_app", "aggregator.gateway (gateway"),
        ("aggregator.gateway._render", "from aggregator._answer import Answer", "(core)"),
        ("aggregator.gateway._render", "from .._cache import PartCache", "aggregator._cache"),
        ("contracts._views", "from aggregator import Part", "contracts._views (contracts)"),
        ("participants._store", "from aggregator import Part", "-> aggregator (core-public)"),
        ("aggregator.gateway._render", "from aggregator import _answer", "aggregator._answer"),
        ("aggregator._cli", "from .gateway import _render", "aggregator.gateway._render"),
        ("aggregator._merge", "importlib.import_module('demo')", "-> demo (demo)"),
    ],
)
def test_a_planted_back_import_is_found(module: str, source: str, expected: str) -> None:
    sources = our_sources()
    sources[module] = (sources[module][0] + "\n" + source + "\n", False)
    found = backward_imports(sources)
    assert len(found) == 1 and expected in found[0], found


def test_the_demo_and_participants_commands_are_entry_points() -> None:
    from importlib import metadata

    points = {p.name: p.value for p in metadata.entry_points(group="status_aggregator.commands")}
    assert points == {"demo": "demo:main", "participants": "participants.__main__:command"}

"""Dependency floors sit at or above the releases that fixed the advisories we know of.

The floors are what an install may resolve to, so a floor below a fix lets a
vulnerable release in. Known fixes, by the floor that excludes them:

- aiohttp 3.14.3: a heap over-read in the HTTP response parser, reachable by a
  malformed participant answer.
- pydantic 2.4.0: CVE-2024-3772, regular-expression denial of service in email
  validation.
- setuptools 78.1.1 (build only): CVE-2025-47273, path traversal in PackageIndex;
  70.0.0 fixed CVE-2024-6345, code execution through package URLs.

Review this table with ``pip-audit`` (which needs network access to the advisory
database) whenever a floor moves.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
FIXED_IN = {"aiohttp": (3, 14, 3), "pydantic": (2, 4, 0), "setuptools": (78, 1, 1)}


def floors() -> dict[str, tuple[int, ...]]:
    requirements = [
        *PYPROJECT["project"]["dependencies"],
        *PYPROJECT["build-system"]["requires"],
        *PYPROJECT["project"]["optional-dependencies"]["test"],
    ]
    found = {}
    for requirement in requirements:
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[\w,]+\])?>=([\d.]+)", requirement)
        assert match is not None, f"{requirement!r} has no >= floor"
        found[match.group(1).lower()] = tuple(int(part) for part in match.group(3).split("."))
    return found


@pytest.mark.parametrize(("name", "fixed"), sorted(FIXED_IN.items()))
def test_floors_exclude_releases_with_known_advisories(name: str, fixed: tuple[int, ...]) -> None:
    assert floors()[name] >= fixed, f"{name} may resolve below {fixed}"


def test_every_dependency_has_a_floor() -> None:
    assert set(FIXED_IN) <= set(floors())

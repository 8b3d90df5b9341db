"""The operator page's files: served only when ``gateway.ui`` is on, from a fixed list,
with headers that let no script or style in from elsewhere (the browser suite,
tests/browser, drives the page itself)."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from yarl import URL

from aggregator.gateway._ui import CONTENT_TYPES
from contracts import Problem
from tests.gateway.harness import documented_routes, gateway_settings, running_gateway
from tests.loopback import LoopbackParticipants

ON = {"ui": True}
FILES = {
    "/ui": "text/html",
    "/ui/ui.js": "text/javascript",
    "/ui/sse.js": "text/javascript",
    "/ui/ui.css": "text/css",
    "/ui/icon.svg": "image/svg+xml",
}


async def test_the_page_is_off_by_default(participants: LoopbackParticipants) -> None:
    async with running_gateway(gateway_settings(participants)) as gw:
        for path in FILES:
            response = await gw.client.get(path)
            problem = Problem.model_validate_json(await response.read())
            assert response.status == 404 and problem.type.endswith(":not-found"), path


async def test_the_page_and_its_files_with_their_headers(
    participants: LoopbackParticipants,
) -> None:
    async with running_gateway(gateway_settings(participants, gateway=ON)) as gw:
        for path, content_type in FILES.items():
            response = await gw.client.get(path)
            body = await response.read()
            assert response.status == 200, path
            assert response.content_type == content_type, path
            assert body, path
            headers = response.headers
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Cache-Control"] == "no-cache"
            policy = headers["Content-Security-Policy"]
            assert "default-src 'self'" in policy and "unsafe-inline" not in policy
            assert "script-src 'self'" in policy and "style-src 'self'" in policy
            again = await gw.client.get(path, headers={"If-None-Match": headers["ETag"]})
            assert again.status == 304 and await again.read() == b"", path


async def test_the_page_names_nothing_from_elsewhere_and_nothing_inline(
    participants: LoopbackParticipants,
) -> None:
    async with running_gateway(gateway_settings(participants, gateway=ON)) as gw:
        page = await (await gw.client.get("/ui")).text()
        script = await (await gw.client.get("/ui/ui.js")).text()
    for text in (page, script):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert "<style" not in page and "style=" not in page and "<script>" not in page
    assert "innerHTML" not in script and "outerHTML" not in script


@pytest.mark.parametrize(
    "path",
    [
        "/ui/index.html",  # the page is /ui alone: relative links would break under it
        "/ui/_ui.py",
        "/ui/..%2F_ui.py",
        "/ui/%2E%2E%2F_app.py",
        "/ui/ui%2Fui.js",
        "/ui/ui/ui.js",
        "/ui/",
        "/ui/UI.JS",
    ],
)
async def test_only_the_listed_files_are_served(
    participants: LoopbackParticipants, path: str
) -> None:
    async with running_gateway(gateway_settings(participants, gateway=ON)) as gw:
        response = await gw.client.get(URL(gw.url + path, encoded=True))
        problem = Problem.model_validate_json(await response.read())
    assert response.status == 404 and problem.type.endswith(":not-found")


async def test_the_page_needs_no_key_its_data_does(participants: LoopbackParticipants) -> None:
    auth = {"ui": True, "auth": {"enabled": True, "keys": {"key-0123456789abcdef": "t"}}}
    async with running_gateway(gateway_settings(participants, gateway=auth)) as gw:
        page = await gw.client.get("/ui")
        status = await gw.client.get("/workflows/order-1/status")
    assert page.status == 200 and "Vary" not in page.headers
    assert status.status == 401


async def test_openapi_lists_the_page_when_it_is_on(participants: LoopbackParticipants) -> None:
    async with running_gateway(gateway_settings(participants, gateway=ON)) as gw:
        document, _ = await documented_routes(gw)
    assert {"/ui", "/ui/{asset}"} <= set(document["paths"])


def test_every_file_of_the_page_ships_in_the_package_and_is_served() -> None:
    """A file added to the page must be in the wheel (package data) and in the list
    served; a file lying there unlisted would be neither shipped on purpose nor served."""
    root = Path(__file__).parents[2]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["aggregator"]
    folder = root / "aggregator" / "gateway" / "ui"
    assert sorted(path.name for path in folder.iterdir()) == sorted(CONTENT_TYPES)
    for name in CONTENT_TYPES:
        assert any(fnmatch(f"gateway/ui/{name}", pattern) for pattern in shipped), name

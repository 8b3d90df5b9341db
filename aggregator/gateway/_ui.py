"""The operator page: static files shipped in the package, served under ``/ui``.

The page reads everything else through the gateway's own API (status, events,
batch), with the caller's key; the files themselves carry no data and need none.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from aiohttp import web

PAGE = "index.html"
# The only files served: a name not listed is a 404, whatever it contains (no path
# is ever built from the request).
CONTENT_TYPES = {
    PAGE: "text/html; charset=utf-8",
    "ui.css": "text/css; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8",
    "sse.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
# Nothing inline and nothing from elsewhere: a status or a participant's view that
# smuggled markup into the page could run no script and load nothing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every load: an upgraded gateway never runs an old script.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _load() -> dict[str, Asset]:
    folder = files("aggregator.gateway").joinpath("ui")
    assets = {}
    for name, content_type in CONTENT_TYPES.items():
        body = folder.joinpath(name).read_bytes()
        etag = f'"{hashlib.sha256(body).hexdigest()[:24]}"'
        assets[name] = Asset(body, content_type, etag)
    return assets


class OperatorPage:
    """The page's handlers, its files read once when the application is made."""

    def __init__(self) -> None:
        self._assets = _load()

    async def page(self, request: web.Request, _: object) -> web.StreamResponse:
        return self._serve(request, self._assets[PAGE])

    async def asset(self, request: web.Request, _: object) -> web.StreamResponse:
        name = request.match_info["asset"]
        found = self._assets.get(name) if name != PAGE else None  # the page is /ui alone
        if found is None:
            raise web.HTTPNotFound()
        return self._serve(request, found)

    @staticmethod
    def _serve(request: web.Request, asset: Asset) -> web.Response:
        headers = {**HEADERS, "ETag": asset.etag}
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=asset.body, headers={**headers, "Content-Type": asset.content_type}
        )

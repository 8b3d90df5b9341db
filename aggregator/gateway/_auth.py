"""Who is asking: API keys or bearer tokens, each mapped to a tenant."""

from __future__ import annotations

import hashlib

from aiohttp import web

from aggregator import AuthSettings


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Authenticator:
    """Maps a request's credential to its tenant.

    Credentials come as ``Authorization: Bearer <token>`` or ``X-API-Key: <key>``.
    Keys are held as digests and looked up by digest, so the lookup time does
    not depend on how much of a guessed key is right.
    """

    __slots__ = ("_tenants", "enabled")

    def __init__(self, settings: AuthSettings) -> None:
        self.enabled = settings.enabled
        self._tenants = {_digest(token): tenant for token, tenant in settings.keys.items()}

    def tenant(self, request: web.Request) -> str | None:
        """The tenant; ``""`` when authentication is off; None when refused."""
        if not self.enabled:
            return ""
        token = request.headers.get("X-API-Key")
        if token is None:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else None
        if not token or len(token) > 512:
            return None
        return self._tenants.get(_digest(token))

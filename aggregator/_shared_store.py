"""The parts store shared by every process that points at it: Valkey (or Redis).

Per participant and workflow (and scope) it holds two keys, in one hash slot:

- ``<prefix>:{<scope>:<participant>:<id>}:part``, the last part kept, as
  ``_part_codec`` writes it, expiring (``PX``) when it could no longer stand in;
- ``...:lease``, while one process calls the participant for it: taken with
  ``SET NX PX`` for the call's timeout, so a holder that dies lets go by itself.

A part replaces the one held only if its version is not lower (``KEEP``, a script:
compare and set in one step), so a lagging process never regresses what the
others show. Every operation has a time budget; on any failure the store is left
alone for ``retry_ms`` (``StoreUnavailable`` at once, no I/O), and the callers
carry on with their own process's parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from ._settings import CacheSettings

if TYPE_CHECKING:
    from valkey.asyncio import Valkey

log = logging.getLogger("aggregator.shared")
T = TypeVar("T")

# KEYS: part, lease. ARGV: data, its version (-1: none), px, the lease's token ("": none).
# Returns the part held instead when it has a higher version, else nothing.
KEEP = """
local held = redis.call('GET', KEYS[1])
local version = tonumber(ARGV[2])
local shown = false
if held and version >= 0 then
  local was = tonumber(string.match(held, '^(%-?%d+)|'))
  if was and was > version then shown = held end
end
if not shown then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return shown
"""
# KEYS: lease. ARGV: token. Lets go of a lease only if it is still this holder's.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class StoreUnavailable(Exception):
    """The shared store failed, or is being left alone after a failure."""


def shown_url(backend: str) -> str:
    """The backend's URL without any credential, for logs and ``/readyz``."""
    url = urlsplit(backend)
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.hostname}{port}{url.path}"


class SharedStore:
    """One connection pool to the shared store, for all participants' pipelines; an
    async context manager. ``now`` is a monotonic clock (seconds)."""

    def __init__(
        self, settings: CacheSettings, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.url = shown_url(settings.backend)
        self._prefix = settings.prefix
        self._budget = settings.op_budget_ms / 1000
        self._retry = settings.retry_ms / 1000
        self._now = now
        # Imported here: an aggregator with the memory backend never loads the client.
        from valkey.asyncio import Valkey
        from valkey.exceptions import ValkeyError

        self._errors = (ValkeyError, OSError, TimeoutError)
        password = settings.password.get_secret_value() if settings.password else None
        self._client: Valkey = Valkey.from_url(
            settings.backend,
            password=password,
            socket_timeout=self._budget,
            socket_connect_timeout=self._budget,
            retry_on_timeout=False,
        )
        self._keep = self._client.register_script(KEEP)
        self._release = self._client.register_script(RELEASE)
        self._down_until = 0.0
        self._probe: asyncio.Task[None] | None = None
        self.problem: str | None = None  # why the store is left alone now, if it is
        self.failures = 0  # operations failed since start
        self.operations = 0  # operations attempted since start

    async def __aenter__(self) -> SharedStore:
        # Down at start is no reason not to start: the callers carry on alone.
        with contextlib.suppress(StoreUnavailable):
            await self._op(self._client.ping())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        await self._client.aclose()

    @property
    def available(self) -> bool:
        """Whether operations are tried now (False while left alone after a failure)."""
        return self._now() >= self._down_until

    def keys(self, scope: str, participant: str, workflow_id: str) -> tuple[str, str]:
        """The part's key and its lease's."""
        slot = f"{self._prefix}:{{{quote(scope, safe='')}:{quote(participant, safe='')}:"
        return f"{slot}{workflow_id}}}:part", f"{slot}{workflow_id}}}:lease"

    async def read(self, part_key: str, lease_key: str) -> tuple[bytes | None, bool]:
        """The part held (if any), and whether a lease on it is held."""
        held, lease = await self._op(self._client.mget([part_key, lease_key]))
        return held, lease is not None

    async def lease(self, lease_key: str, token: str, ms: int) -> bool:
        """Take the lease for ``ms`` milliseconds; False if another process holds it."""
        return bool(await self._op(self._client.set(lease_key, token, nx=True, px=ms)))

    async def keep(
        self, part_key: str, lease_key: str, data: bytes, version: int, ms: int, token: str
    ) -> bytes | None:
        """Keep a part for ``ms`` milliseconds unless a higher version is held (then
        that one is returned), and let go of the lease ``token`` holds."""
        held = await self._op(
            self._keep(keys=[part_key, lease_key], args=[data, version, ms, token])
        )
        return held if isinstance(held, bytes) else None

    async def release(self, lease_key: str, token: str) -> None:
        await self._op(self._release(keys=[lease_key], args=[token]))

    async def _op(self, operation: Awaitable[T]) -> T:
        if not self.available:
            _close(operation)
            raise StoreUnavailable(self.problem or "left alone")
        self.operations += 1
        try:
            async with asyncio.timeout(self._budget):
                result = await operation
        except self._errors as exc:
            self._failed(exc)
            raise StoreUnavailable(self.problem) from None
        if self.problem is not None:
            log.warning("shared store %s: back, parts are shared again", self.url)
            self.problem = None
        return result

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self._down_until = self._now() + self._retry
        problem = (
            f"no answer within {self._budget * 1000:.0f} ms"
            if isinstance(exc, TimeoutError)
            else f"{type(exc).__name__}: {exc}"[:200]
        )
        if self.problem is None:
            log.warning(
                "shared store %s: %s; each process keeps its own parts until it is back",
                self.url,
                problem,
            )
        self.problem = problem
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._until_back())

    async def _until_back(self) -> None:
        """While the store is unavailable: ask it every ``retry_ms``, so that it is
        found back however few requests need it (a hot id is held here meanwhile)."""
        while self.problem is not None:
            await asyncio.sleep(self._retry)
            with contextlib.suppress(StoreUnavailable):
                await self._op(self._client.ping())


def _close(operation: Awaitable[Any]) -> None:
    """An operation never awaited: close its coroutine, so it is not reported."""
    close = getattr(operation, "close", None)
    if close is not None:
        close()

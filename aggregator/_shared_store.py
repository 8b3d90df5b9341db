"""The parts store shared by every process that points at it: Valkey (or Redis).

Per participant and workflow (and scope) it holds two keys, in one hash slot:

- ``<prefix>:{<scope>:<participant>:<id>}:part``, the last part kept, as
  ``_part_codec`` writes it, expiring (``PX``) when it could no longer stand in;
- ``...:lease``, while one process calls the participant for it: taken with
  ``SET NX PX`` for the call's longest time, so a holder that dies lets go by itself.

A process reads a part and, unless it is fresh, takes its lease in one step
(``TAKE``: the part says until when it is fresh). A part replaces the one held
only if its version is not lower (``KEEP``: compare and set in one step), so a
lagging process never regresses what the others show. Both are scripts, and the
reads (or keeps) asked for in one turn of the event loop, by every participant
and request, go as one call of the script: on a busy process one round trip
serves many. (So every key of a batch must be on one server: Valkey Cluster is
not supported.)

Every operation has a time budget; on any failure the store is left alone for
``retry_ms`` (``StoreUnavailable`` at once, no I/O), and the callers carry on with
their own process's parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import secrets
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

# KEYS: part, lease, part, lease ... ARGV: now (ms), px, then a token per pair.
# Returns, per pair, the part held (or nil) and FRESH when it is fresh (no lease
# taken), else MINE when the lease was taken for that token, or THEIRS when
# another holds it.
TAKE = """
local out = {}
local now = tonumber(ARGV[1])
for i = 1, #KEYS, 2 do
  local held = redis.call('GET', KEYS[i])
  local state = 2
  if held then
    local fresh_until = tonumber(string.match(held, '^%-?%d+|(%d+)|'))
    if fresh_until and fresh_until > now then state = 0 end
  end
  if state == 2 and redis.call('SET', KEYS[i + 1], ARGV[2 + (i + 1) / 2], 'NX', 'PX', ARGV[2]) then
    state = 1
  end
  out[#out + 1] = held or false
  out[#out + 1] = state
end
return out
"""
FRESH, MINE, THEIRS = 0, 1, 2
# KEYS: part, lease ... ARGV: px, then per pair the data (its version first, -1:
# none) and the lease's token ("": none). Keeps each part unless a higher version
# is held, and lets go of the lease; returns per pair the part held instead, or nil.
KEEP = """
local out = {}
for i = 1, #KEYS, 2 do
  local data, token = ARGV[i + 1], ARGV[i + 2]
  local version = tonumber(string.match(data, '^(%-?%d+)|'))
  local held = redis.call('GET', KEYS[i])
  local shown = false
  if held and version >= 0 then
    local was = tonumber(string.match(held, '^(%-?%d+)|'))
    if was and was > version then shown = held end
  end
  if not shown then redis.call('SET', KEYS[i], data, 'PX', ARGV[1]) end
  if token ~= '' and redis.call('GET', KEYS[i + 1]) == token then redis.call('DEL', KEYS[i + 1]) end
  out[#out + 1] = shown
end
return out
"""
# KEYS: lease. ARGV: token. Lets go of a lease only if it is still this holder's.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
MAX_BATCH = 128  # pairs of keys in one script call
MAX_SLOTS = 4_096  # key prefixes kept, by scope and participant, before starting afresh


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
        self,
        settings: CacheSettings,
        *,
        lease_ms: int = 1_000,
        keep_ms: int = 60_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = shown_url(settings.backend)
        self._prefix = settings.prefix
        self._budget = settings.op_budget_ms / 1000
        self._retry = settings.retry_ms / 1000
        self._lease_ms = lease_ms
        self._keep_ms = keep_ms
        self._now = now
        self._batches: dict[str, _Batch] = {}
        self._process = secrets.token_hex(8).encode()  # this store's tokens' prefix
        self._tokens = 0
        self._slots: dict[tuple[str, str], bytes] = {}
        self._sending: set[asyncio.Task[None]] = set()
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
        self._take = self._client.register_script(TAKE)
        self._keep = self._client.register_script(KEEP)
        self._release = self._client.register_script(RELEASE)
        self._down_until = 0.0
        self._probe: asyncio.Task[None] | None = None
        self.problem: str | None = None  # why the store is left alone now, if it is
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
        await asyncio.gather(*self._sending, return_exceptions=True)
        await self._client.aclose()

    @property
    def available(self) -> bool:
        """Whether operations are tried now (False while left alone after a failure)."""
        return self._now() >= self._down_until

    def keys(self, scope: str, participant: str, workflow_id: str) -> tuple[bytes, bytes]:
        """The part's key and its lease's (bytes: sent as they are)."""
        slot = self._slots.get((scope, participant))
        if slot is None:  # a few per participant: one per scope
            if len(self._slots) >= MAX_SLOTS:  # an embedder's scopes may be many
                self._slots.clear()
            slot = self._slots[(scope, participant)] = (
                f"{self._prefix}:{{{quote(scope, safe='')}:{quote(participant, safe='')}:".encode()
            )
        key = slot + workflow_id.encode()
        return key + b"}:part", key + b"}:lease"

    def token(self) -> bytes:
        """A lease token no other caller, in this process or another, has."""
        self._tokens += 1
        return b"%s:%d" % (self._process, self._tokens)

    async def take(
        self, part_key: bytes, lease_key: bytes, now: float, token: bytes
    ) -> tuple[bytes | None, int]:
        """The part held (if any), and FRESH (it is, by the time it says, at ``now``,
        epoch seconds), MINE (the lease is ``token``'s now, for ``lease_ms``) or
        THEIRS (another holds it)."""
        held, state = await self._enqueue("take", (int(now * 1000), self._lease_ms),
                                          [part_key, lease_key], [token])  # fmt: skip
        return (held if isinstance(held, bytes) else None), int(state)

    def keep(
        self, part_key: bytes, lease_key: bytes, data: bytes, token: bytes
    ) -> asyncio.Future[list[Any]]:
        """Keep a part (``_part_codec``'s bytes) for ``keep_ms`` unless a higher
        version is held, and let go of the lease ``token`` holds: the future of
        ``[the part held instead, or None]``.
        Sent with the other keeps of this turn of the event loop; StoreUnavailable at
        once when the store is left alone."""
        return self._enqueue("keep", (self._keep_ms,), [part_key, lease_key], [data, token])

    def _enqueue(
        self, kind: str, head: tuple[Any, ...], keys: list[bytes], args: list[Any]
    ) -> asyncio.Future[list[Any]]:
        if not self.available:
            raise StoreUnavailable(self.problem or "left alone")
        batch = self._batches.get(kind)
        loop = asyncio.get_running_loop()
        if batch is None:
            batch = self._batches[kind] = _Batch(head)
            loop.call_soon(self._send, kind, batch)
        waiter: asyncio.Future[list[Any]] = loop.create_future()
        batch.add(keys, args, waiter)
        if len(batch.waiters) >= MAX_BATCH:
            self._send(kind, batch)
        return waiter

    def _send(self, kind: str, batch: _Batch) -> None:
        if self._batches.get(kind) is not batch:
            return  # sent already, full
        del self._batches[kind]
        script = self._take if kind == "take" else self._keep
        task = asyncio.get_running_loop().create_task(self._flush(script, batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _flush(self, script: Any, batch: _Batch) -> None:
        try:
            reply = await self._op(script(keys=batch.keys, args=[*batch.head, *batch.args]))
        except StoreUnavailable as exc:
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(StoreUnavailable(str(exc)))
            return
        width = len(reply) // len(batch.waiters)
        for index, waiter in enumerate(batch.waiters):
            if not waiter.done():  # a caller that gave up has cancelled its own
                waiter.set_result(reply[index * width : (index + 1) * width])

    async def release(self, lease_key: bytes, token: bytes) -> None:
        await self._op(self._release(keys=[lease_key], args=[token]))

    async def _op(self, operation: Awaitable[T]) -> T:
        if not self.available:
            _close(operation)
            raise StoreUnavailable(self.problem or "left alone")
        self.operations += 1
        try:  # the client's socket timeouts bound it: connecting, and each reply
            result = await operation
        except self._errors as exc:
            self._failed(exc)
            raise StoreUnavailable(self.problem) from None
        if self.problem is not None:
            log.info("shared store %s: back, parts are shared again", self.url)
            self.problem = None
        return result

    def _failed(self, exc: BaseException) -> None:
        self._down_until = self._now() + self._retry
        problem = (
            f"no answer within {self._budget * 1000:.0f} ms"
            if isinstance(exc, TimeoutError)
            else f"{type(exc).__name__}: {str(exc).rstrip('.')}"[:200]
        )
        if self.problem is None:
            log.warning(
                "shared store %s: %s; each process keeps its own parts until it is back",
                self.url,
                problem,
            )
        self.problem = problem
        if self._probe is None or self._probe.done():
            # Its own context: not the request's that happened to find the store down.
            self._probe = asyncio.get_running_loop().create_task(
                self._until_back(), context=contextvars.Context()
            )

    async def _until_back(self) -> None:
        """While the store is unavailable: ask it every ``retry_ms``, so that it is
        found back however few requests need it (a hot id is held here meanwhile)."""
        while self.problem is not None:
            await asyncio.sleep(self._retry)
            with contextlib.suppress(StoreUnavailable):
                await self._op(self._client.ping())


class _Batch:
    """Pairs of keys and their arguments for one script call, and who waits."""

    __slots__ = ("args", "head", "keys", "waiters")

    def __init__(self, head: tuple[Any, ...]) -> None:
        self.head = head
        self.keys: list[bytes] = []
        self.args: list[Any] = []
        self.waiters: list[asyncio.Future[list[Any]]] = []

    def add(self, keys: list[bytes], args: list[Any], waiter: asyncio.Future[list[Any]]) -> None:
        self.keys += keys
        self.args += args
        self.waiters.append(waiter)


def _close(operation: Awaitable[Any]) -> None:
    """An operation never awaited: close its coroutine, so it is not reported."""
    close = getattr(operation, "close", None)
    if close is not None:
        close()

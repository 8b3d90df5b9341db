"""Parts shared by many processes: the stage that reads and keeps them in the
shared store (``_shared_store``), and the in-process layer in front of it.

With a shared store the pipeline is

    fresh parts (in-process, held briefly) -> coalescing -> shared parts -> [tracing]
    -> last good part -> interpret -> ...

``SharedParts`` is reached once per part and process at a time (coalescing is in
front): it serves a part another process fetched while it is fresh; otherwise it
takes the part's lease and lets the call go on, or, when another process holds
the lease, waits for that one's part to appear (short polls within the deadline)
instead of calling too. The part a call brings is kept in the store unless a
higher version is there already, which is then shown, stale, as a
``version_regression``. The last good part read from the store is handed to the
in-process layer, so that the next stage stands it in when the call fails, also
in a process started after that part was fetched.

When the store fails, the process carries on alone: its in-process layer holds
parts their whole lifetime, as the memory backend does, until the store answers
again.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Hashable
from dataclasses import replace

from cachetools import LRUCache

from contracts import ErrorKind, PartError, ParticipantView, Source

from ._cache import PartCache
from ._part import Part
from ._part_codec import Undecodable, decode, encode, version_of
from ._shared_store import SharedStore, StoreUnavailable
from ._stage import Ask, ParticipantStats, Stage

FIRST_POLL = 0.002  # seconds; doubled after each poll, up to LAST_POLL
LAST_POLL = 0.025


class LocalParts(PartCache):
    """The in-process layer: a part is fresh here only for ``hold`` seconds after it
    was kept (and within its own lifetime); ``hold`` None lifts that (the store is
    unavailable: this process keeps its own parts)."""

    __slots__ = ("_held_at", "hold", "shared_hold")

    def __init__(self, *, hold: float, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.shared_hold = hold
        self.hold: float | None = hold
        self._held_at: LRUCache[Hashable, float] = LRUCache(self._parts.maxsize)

    def fresh(self, key: Hashable) -> Part | None:
        part = super().fresh(key)
        hold = self.hold
        if part is None or hold is None:
            return part
        held_at = self._held_at.get(key)
        return part if held_at is not None and self._clock() - held_at < hold else None

    def store(self, key: Hashable, part: Part) -> bool:
        stored = super().store(key, part)
        if stored:
            self._held_at[key] = self._clock()
        return stored

    def keep(self, key: Hashable, part: Part) -> None:
        """Hold a part read from the shared store (marked ``cache``), unless the one
        held here was fetched later."""
        mine = self._parts.get(key)
        if mine is not None and (mine.fetched_at or 0.0) > (part.fetched_at or 0.0):
            return
        self._parts[key] = part
        self._held_at[key] = self._clock()

    def alone(self, alone: bool) -> None:
        """The store is unavailable (this process keeps its own parts), or back."""
        self.hold = None if alone else self.shared_hold


class SharedParts:
    """The stage after coalescing, with a shared store (see the module)."""

    __slots__ = ("_lease_ms", "_local", "_model", "_name", "_next", "_stats", "_store")

    def __init__(
        self,
        next_stage: Stage,
        *,
        store: SharedStore,
        local: LocalParts,
        name: str,
        model: type[ParticipantView],
        lease_ms: int,
        stats: ParticipantStats,
    ) -> None:
        self._next = next_stage
        self._store = store
        self._local = local
        self._name = name
        self._model = model
        self._lease_ms = lease_ms
        self._stats = stats

    def __call__(self, ask: Ask) -> Part | Awaitable[Part]:
        if not self._store.available:
            self._local.alone(True)
            return self._next(ask)
        return self._shared(ask)

    async def _shared(self, ask: Ask) -> Part:
        scope, workflow_id = ask.key
        part_key, lease_key = self._store.keys(scope, self._name, workflow_id)
        try:
            raw, leased = await self._store.read(part_key, lease_key)
        except StoreUnavailable:
            return await self._alone(ask)
        self._local.alone(False)
        held = self._held(ask, raw)
        if held is not None and self._local.is_fresh(held):
            self._stats.shared_hits += 1
            return held
        token = secrets.token_hex(8)
        try:
            mine = not leased and await self._store.lease(lease_key, token, self._lease_ms)
            if not mine:
                self._stats.lease_waits += 1
                waited = await self._wait(ask, part_key, lease_key, raw)
                if waited is not None:
                    self._stats.shared_hits += 1
                    return waited
                # The holder let go without a part (its call failed) or never will in
                # time: this process calls itself, under the lease if it is free.
                mine = await self._store.lease(lease_key, token, self._lease_ms)
        except StoreUnavailable:
            return await self._alone(ask)
        part = await _awaited(self._next(ask))
        return await self._keep(ask, part, part_key, lease_key, token if mine else "")

    def _held(self, ask: Ask, raw: bytes | None) -> Part | None:
        """The part read from the store, handed to the in-process layer."""
        if raw is None:
            return None
        try:
            held = decode(raw, self._model)
        except Undecodable:
            return None  # another program's value: replaced by the next part kept
        self._local.keep(ask.key, held)
        return held

    async def _wait(
        self, ask: Ask, part_key: str, lease_key: str, seen: bytes | None
    ) -> Part | None:
        """The part another process's call brings, fresh; None if its lease ends
        without one, or the deadline comes first."""
        loop = asyncio.get_running_loop()
        delay = FIRST_POLL
        while loop.time() + delay < ask.deadline:
            await asyncio.sleep(delay)
            raw, leased = await self._store.read(part_key, lease_key)
            if raw is not None and raw != seen:
                part = self._held(ask, raw)
                if part is not None and self._local.is_fresh(part):
                    return part
            if not leased:
                return None
            delay = min(delay * 2, LAST_POLL)
        return None

    async def _keep(self, ask: Ask, part: Part, part_key: str, lease_key: str, token: str) -> Part:
        """Share the part a call brought (unless a higher version is shared: that
        one is shown), and let go of the lease."""
        try:
            if part.source is Source.LIVE and self._local.keeps(part):
                shown = await self._store.keep(
                    part_key, lease_key, encode(part), version_of(part), self._keep_ms, token
                )
                newer = None if shown is None else self._held(ask, shown)
                if newer is not None and newer.view is not None and part.view is not None:
                    return _regressed(newer, part.view.version)
            elif token:
                await self._store.release(lease_key, token)
        except StoreUnavailable:
            self._local.alone(True)
        return part

    @property
    def _keep_ms(self) -> int:
        """How long the store keeps a part: as long as it may be of use (fresh, or
        standing in)."""
        return int(self._local.longest * 1000)

    async def _alone(self, ask: Ask) -> Part:
        self._local.alone(True)
        return await _awaited(self._next(ask))


def _regressed(newer: Part, version: int) -> Part:
    detail = (
        f"answered version {version}, older than version "
        f"{newer.view.version if newer.view else '?'} already seen; the newer one is shown"
    )
    return replace(
        newer,
        source=Source.STALE,
        error=PartError(kind=ErrorKind.VERSION_REGRESSION, detail=detail),
    )


async def _awaited(got: Part | Awaitable[Part]) -> Part:
    return got if isinstance(got, Part) else await got

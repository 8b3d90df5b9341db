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
higher version is there already. Every part read from the store is handed to the
in-process layer, so that the next stage (``LastGood``) compares a live part's
version with it, and stands it in when the call fails, also in a process started
after that part was fetched.

When the store fails, the process carries on alone: its in-process layer holds
parts their whole lifetime, as the memory backend does, until the store answers
again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Any

from cachetools import LRUCache

from contracts import ParticipantView, Source

from ._cache import PartCache
from ._part import Part
from ._part_codec import Undecodable, decode, encode
from ._shared_store import MINE, THEIRS, SharedStore, StoreUnavailable
from ._stage import Ask, ParticipantStats, Stage

FIRST_POLL = 0.002  # seconds; doubled after each poll, up to LAST_POLL
LAST_POLL = 0.025


class LocalParts(PartCache):
    """The in-process layer: a part is fresh here only for ``hold`` seconds after it
    was kept (and within its own lifetime); ``hold`` None lifts that (the store is
    unavailable: this process keeps its own parts)."""

    __slots__ = ("_held_at", "hold", "shared_hold")

    def __init__(
        self,
        *,
        hold: float,
        ttl: float,
        terminal_ttl: float,
        stale: float,
        max_entries: int,
        terminal: frozenset[str],
        clock: Callable[[], float],
    ) -> None:
        super().__init__(
            ttl=ttl,
            terminal_ttl=terminal_ttl,
            stale=stale,
            max_entries=max_entries,
            terminal=terminal,
            clock=clock,
        )
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
        held here has a higher version, or the same one fetched later."""
        mine = self._parts.get(key)
        if mine is not None and _rank(mine) > _rank(part):
            return
        self._parts[key] = part
        self._held_at[key] = self._clock()

    def now(self) -> float:
        return self._clock()

    def alone(self, alone: bool) -> None:
        """The store is unavailable (this process keeps its own parts), or back."""
        self.hold = None if alone else self.shared_hold


class SharedParts:
    """The stage after coalescing, with a shared store (see the module)."""

    __slots__ = ("_local", "_model", "_name", "_next", "_stats", "_store")

    def __init__(
        self,
        next_stage: Stage,
        *,
        store: SharedStore,
        local: LocalParts,
        name: str,
        model: type[ParticipantView],
        stats: ParticipantStats,
    ) -> None:
        self._next = next_stage
        self._store = store
        self._local = local
        self._name = name
        self._model = model
        self._stats = stats

    def __call__(self, ask: Ask) -> Part | Awaitable[Part]:
        if not self._store.available:
            self._local.alone(True)
            return self._next(ask)
        return self._shared(ask)

    async def _shared(self, ask: Ask) -> Part:
        scope, workflow_id = ask.key
        part_key, lease_key = self._store.keys(scope, self._name, workflow_id)
        token = self._store.token()
        try:
            raw, state = await self._take(part_key, lease_key, token)
            held = self._held(ask, raw)
            if state == THEIRS:
                self._stats.lease_waits += 1
                raw, state = await self._wait(ask, part_key, lease_key, token, raw)
                held = self._held(ask, raw)
        except StoreUnavailable:
            return await self._alone(ask)
        self._local.alone(False)
        if held is not None and self._local.is_fresh(held):
            self._stats.shared_hits += 1
            if state == MINE:  # fresh by our settings, though not by its writer's
                await self._release(lease_key, token)
            return held
        # The lease is this process's (MINE), or its holder has not answered by the
        # deadline (THEIRS): the call is made either way.
        part = await _awaited(self._next(ask))
        return await self._keep(ask, part, part_key, lease_key, token if state == MINE else b"")

    async def _take(
        self, part_key: bytes, lease_key: bytes, token: bytes
    ) -> tuple[bytes | None, int]:
        return await self._store.take(part_key, lease_key, self._local.now(), token)

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
        self, ask: Ask, part_key: bytes, lease_key: bytes, token: bytes, seen: bytes | None
    ) -> tuple[bytes | None, int]:
        """While another process holds the lease: the part its call brings (FRESH),
        or the lease, once it lets go without one (MINE); THEIRS still at the deadline."""
        loop = asyncio.get_running_loop()
        delay = FIRST_POLL
        raw, state = seen, THEIRS
        while loop.time() + delay < ask.deadline:
            await asyncio.sleep(delay)
            raw, state = await self._take(part_key, lease_key, token)
            if state != THEIRS:
                break
            delay = min(delay * 2, LAST_POLL)
        return raw, state

    async def _release(self, lease_key: bytes, token: bytes) -> None:
        try:
            await self._store.release(lease_key, token)
        except StoreUnavailable:
            self._local.alone(True)

    async def _keep(
        self, ask: Ask, part: Part, part_key: bytes, lease_key: bytes, token: bytes
    ) -> Part:
        """Share the part a call brought, and let go of the lease. Not waited for:
        sent with this turn's other keeps; should a higher version be held already
        (another process kept it since this one read), the store keeps that one and
        this process holds it from then on."""
        try:
            if part.source is Source.LIVE and self._local.keeps(part):
                fresh_until = (part.fetched_at or 0.0) + self._local.lifetime(part)
                kept = self._store.keep(part_key, lease_key, encode(part, fresh_until), token)
                kept.add_done_callback(partial(self._kept, ask))
            elif token:
                await self._release(lease_key, token)
        except StoreUnavailable:
            self._local.alone(True)
        return part

    def _kept(self, ask: Ask, kept: asyncio.Future[list[Any]]) -> None:
        if kept.cancelled():
            return
        if kept.exception() is not None:
            self._local.alone(True)
            return
        [shown] = kept.result()
        if isinstance(shown, bytes):
            self._held(ask, shown)

    async def _alone(self, ask: Ask) -> Part:
        self._local.alone(True)
        return await _awaited(self._next(ask))


def _rank(part: Part) -> tuple[int, float]:
    return (-1 if part.view is None else part.view.version), part.fetched_at or 0.0


async def _awaited(got: Part | Awaitable[Part]) -> Part:
    return got if isinstance(got, Part) else await got

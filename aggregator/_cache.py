"""Per-participant part store, and the two stages that read it: fresh parts first,
the last good part when a call fails."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import replace
from typing import Generic, TypeVar

from cachetools import LRUCache

from contracts import ErrorKind, Outcome, PartError, Source

from ._part import Part
from ._stage import Ask, Key, Stage

Later = TypeVar("Later")  # what the next stage answers when it cannot answer at once


def lifetime(part: Part, *, ttl: float, terminal_ttl: float, terminal: frozenset[str]) -> float:
    """How long ``part`` is fresh after it was fetched: our time to live (longer for a
    final state), or less when its participant's ``max-age`` or ``no-cache`` said so."""
    final = part.view is not None and part.view.state in terminal
    ours = terminal_ttl if final else ttl
    said = part.directives
    theirs = 0.0 if said.no_cache else said.max_age  # no-cache: ask again before any reuse
    return ours if theirs is None or theirs >= ours else theirs


class PartCache:
    """One bounded store on an injected clock.

    A live ok or not-found part is kept, marked ``cache``, unless its participant
    said not to (``_cache_control``). While younger than its time to live (longer
    for a final state, shorter when its ``max-age`` says so) it is ``fresh`` and
    answers in place of a fetch; an ok part younger than the stale window is the
    ``known_good`` one, read only when a live fetch fails. Failures are never stored.
    """

    __slots__ = (
        "_clock",
        "_parts",
        "_stale",
        "_standing_in",
        "_terminal",
        "_terminal_ttl",
        "_ttl",
    )

    def __init__(
        self,
        *,
        ttl: float,
        terminal_ttl: float,
        stale: float,
        max_entries: int,
        terminal: frozenset[str],
        clock: Callable[[], float],
    ) -> None:
        self._ttl = ttl
        self._terminal_ttl = terminal_ttl
        self._stale = stale
        self._terminal = terminal
        self._clock = clock
        # Age alone decides what a part is good for, so the store needs no clock of its
        # own: the least recently used part makes room. (A TTLCache cost twice as much
        # per miss, and the bound is the same: bench/RESULTS.md.)
        self._parts: LRUCache[Hashable, Part] = LRUCache(max_entries)
        self._standing_in: LRUCache[Hashable, Part] = LRUCache(max_entries)

    def stale_until(self, part: Part) -> float:
        """Until when ``part`` may stand in for a failed call (the stale window's end)."""
        return float("inf") if part.fetched_at is None else part.fetched_at + self._stale

    def lifetime(self, part: Part) -> float:
        """How long ``part`` is served from the cache after it was fetched."""
        return lifetime(
            part, ttl=self._ttl, terminal_ttl=self._terminal_ttl, terminal=self._terminal
        )

    def fresh(self, key: Hashable) -> Part | None:
        """A part still within its time to live, marked ``cache``."""
        part = self._parts.get(key)
        if part is None or part.fetched_at is None:
            return None
        return part if self._clock() - part.fetched_at < self.lifetime(part) else None

    def is_fresh(self, part: Part) -> bool:
        """Whether ``part`` (kept here or elsewhere) is within its time to live."""
        return part.fetched_at is not None and (
            self._clock() - part.fetched_at < self.lifetime(part)
        )

    def known_good(self, key: Hashable) -> Part | None:
        """The last ok part within the stale window."""
        part = self._parts.get(key)
        if part is None or part.outcome is not Outcome.OK or part.fetched_at is None:
            return None
        return part if self._clock() - part.fetched_at < self._stale else None

    def stand_in(self, key: Hashable, outcome: Outcome, error: PartError | None) -> Part | None:
        """The known good part, marked stale with why a fetch failed; None if there is none.

        While the same part stands in for the same failure it is the same object, so
        an answer made of it is rendered once, not on every request of an outage.
        """
        held = self.known_good(key)
        if held is None or held.directives.must_revalidate:
            return None
        last = self._standing_in.get(key)
        if (
            last is not None
            and last.view is held.view
            and last.fetched_at == held.fetched_at
            and last.outcome is outcome
            and last.error == error
        ):
            return last
        stale = replace(held, outcome=outcome, source=Source.STALE, error=error)
        self._standing_in[key] = stale
        return stale

    @staticmethod
    def keeps(part: Part) -> bool:
        """Whether ``store`` keeps ``part``: a live ok or not-found part its
        participant let us keep."""
        return (
            part.source is Source.LIVE
            and part.outcome in (Outcome.OK, Outcome.NOT_FOUND)
            and part.directives.storable
        )

    def store(self, key: Hashable, part: Part) -> bool:
        """Keep ``part`` if it ``keeps`` it (say whether); anything else is ignored."""
        if not self.keeps(part):
            return False
        self._parts[key] = Part(
            part.outcome, Source.CACHE, part.view, part.fetched_at, part.error, part.directives
        )
        return True

    def __len__(self) -> int:
        return len(self._parts)


class FreshParts(Generic[Later]):
    """The first stage: a part still fresh in the store is the answer, at once."""

    __slots__ = ("_cache", "_next")

    def __init__(self, next_stage: Callable[[Ask], Part | Later], cache: PartCache) -> None:
        self._next = next_stage
        self._cache = cache

    def __call__(self, ask: Ask) -> Part | Later:
        part = self._cache.fresh(ask.key)
        return self._next(ask) if part is None else part


class LastGood:
    """The stage after coalescing: keeps each live part a call brings, and when a
    call fails, gives the last good part in its place, marked stale with why.

    A live part with a lower version than the one already kept is not kept: the
    kept one is shown instead, stale, with a ``version_regression`` error.
    """

    __slots__ = ("_cache", "_next")

    def __init__(self, next_stage: Stage, cache: PartCache) -> None:
        self._next = next_stage
        self._cache = cache

    def __call__(self, ask: Ask) -> Part | Awaitable[Part]:
        got = self._next(ask)
        if isinstance(got, Part):
            return self.settle(ask.key, got)
        return self._later(ask.key, got)

    async def _later(self, key: Key, call: Awaitable[Part]) -> Part:
        return self.settle(key, await call)

    def settle(self, key: Key, part: Part) -> Part:
        """What to show for the part a call brought."""
        if part.source is not Source.LIVE:
            return self._cache.stand_in(key, part.outcome, part.error) or part
        held = self._cache.known_good(key)
        if (
            held is not None
            and held.view is not None
            and part.view is not None
            and part.view.version < held.view.version
        ):
            detail = (
                f"answered version {part.view.version}, older than version "
                f"{held.view.version} already seen; the newer one is shown"
            )
            return replace(
                held,
                source=Source.STALE,
                error=PartError(kind=ErrorKind.VERSION_REGRESSION, detail=detail),
            )
        self._cache.store(key, part)
        return part

"""Per-participant part stores: a short-lived cache and a last-known-good store."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import replace

from cachetools import TLRUCache, TTLCache

from contracts import Outcome, Source

from ._part import Part


class PartCache:
    """Two bounded stores on an injected clock.

    ``fresh`` answers (ok or not-found) are served as ``cache`` for their time to
    live, longer for a final state. The ``known_good`` store keeps the last ok
    answer for the stale window, and is read only when a live fetch fails.
    Failures are never stored.
    """

    __slots__ = ("_fresh", "_known_good", "_terminal", "_terminal_ttl", "_ttl")

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
        self._terminal = terminal
        self._fresh: TLRUCache[Hashable, Part] = TLRUCache(max_entries, self._expiry, timer=clock)
        self._known_good: TTLCache[Hashable, Part] = TTLCache(max_entries, stale, timer=clock)

    def _expiry(self, _key: Hashable, part: Part, now: float) -> float:
        final = part.view is not None and part.view.state in self._terminal
        return now + (self._terminal_ttl if final else self._ttl)

    def fresh(self, key: Hashable) -> Part | None:
        """A part still within its time to live, marked ``cache``."""
        return self._fresh.get(key)

    def known_good(self, key: Hashable) -> Part | None:
        """The last ok part within the stale window, as it was fetched."""
        return self._known_good.get(key)

    def store(self, key: Hashable, part: Part) -> None:
        """Keep a live ok or not-found part; anything else is ignored."""
        if part.source is not Source.LIVE or part.outcome not in (Outcome.OK, Outcome.NOT_FOUND):
            return
        self._fresh[key] = replace(part, source=Source.CACHE)
        if part.outcome is Outcome.OK:
            self._known_good[key] = part
        else:
            self._known_good.pop(key, None)

    def __len__(self) -> int:
        return len(self._fresh)

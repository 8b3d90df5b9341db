"""When a rendering is made once and served again: the rules, in one place.

1. A rendering is only ever served again for the very parts it was made of
   (the same objects), to the same scope, for the same workflow.
2. Made of cached parts (and parts standing in while a circuit is open), it is
   kept per workflow and scope, the oldest out first beyond ``max_entries``, and
   served without asking the participants until its first cached part expires,
   a stand-in's time ends or a duration anomaly falls due on its parts
   (``Rendering.reusable_until``), and only while no circuit has opened or
   closed since (stand-ins may differ then). One with an anomaly that could not
   be confirmed is never served again: the next request tries again.
3. Made with a part just fetched, it can only serve the callers who shared
   those calls (later ones get the parts from the cache: other objects), and
   they all resume in the event loop's turn in which the last of the calls
   landed. So it is held until the next turn, then let go. (Kept, such
   renderings held memory no request could use until evicted: over a third of
   the gateway's resident memory under a miss load, bench/RESULTS.md.)

Answers served again are counted by the kinds of their parts (each part's source
and outcome), one counter per kind, and added to the participants' stats only
when read: a reused answer bumps one integer.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from contracts import Outcome, Source

from ._answer import Rendering
from ._part import Part
from ._stage import Key

Kinds = tuple[tuple[Source | None, Outcome], ...]  # each part's (source, outcome), in order


@dataclass(slots=True)
class _Kept:
    rendering: Rendering
    circuits: tuple[int, ...] | None  # with stand-ins: the breakers' change counts then
    kinds: int  # the counter its reuses are counted under
    until: float  # served again before then only


class Renderings:
    """The renderings that may be served again. ``circuits`` gives the breakers'
    change counts (``CircuitBreaker.changes``), in the participants' order; ``hold``
    (seconds), when parts are shared with other processes, how long one is served
    again at most (the time the in-process layer holds a shared part)."""

    __slots__ = ("_circuits", "_counts", "_fresh", "_hold", "_kept", "_kinds", "_max_entries")

    def __init__(
        self,
        *,
        max_entries: int,
        circuits: Callable[[], tuple[int, ...]],
        hold: float | None = None,
    ) -> None:
        self._max_entries = max_entries
        self._circuits = circuits
        self._hold = hold
        # An OrderedDict: a dict's oldest key costs a scan over the slots its deletions
        # left (7.6 us an eviction at 20,000 entries, 0.4 here).
        self._kept: OrderedDict[Key, _Kept] = OrderedDict()
        self._fresh: dict[Key, Rendering] = {}  # emptied at the loop's next turn
        self._kinds: dict[Kinds, int] = {}
        self._counts: list[int] = []

    def reusable(self, key: Key, now: float) -> Rendering | None:
        """The kept rendering for ``key``, if it may be served at ``now`` without
        asking any participant (rule 2)."""
        kept = self._kept.get(key)
        if kept is None or now >= kept.until:
            return None
        if kept.circuits is not None and kept.circuits != self._circuits():
            return None
        self._counts[kept.kinds] += 1
        return kept.rendering

    def made_of(
        self, key: Key, parts: Mapping[str, Part], now: float, *, fetched: bool, stand_ins: bool
    ) -> Rendering | None:
        """A rendering already made of these very parts (rule 1), if any may be served
        at ``now``. ``fetched``: some part was just fetched; ``stand_ins``: some stands in."""
        if fetched:
            rendering = self._fresh.get(key)  # made in this turn of the loop
        elif stand_ins:
            return None  # made again: how long it may be kept depends on the breakers now
        else:
            kept = self._kept.get(key)
            rendering = None if kept is None else kept.rendering
            # Not reusable_until: -inf with a stale part, which would render every
            # answer of an outage again though the same stale part stands in.
            if rendering is not None and (rendering.tentative or now >= rendering.verdict.due):
                return None  # an anomaly fell due, or one is tentative
        return rendering if rendering is not None and rendering.serves(parts) else None

    def keep(
        self, key: Key, rendering: Rendering, now: float, *, fetched: bool, stand_ins: bool
    ) -> None:
        """Hold a new rendering, made at ``now``, as its parts allow (rules 2 and 3)."""
        parts = rendering.parts.values()
        if fetched:
            if not self._fresh:
                asyncio.get_running_loop().call_soon(self._fresh.clear)
            self._fresh[key] = rendering
            return
        if key not in self._kept and len(self._kept) >= self._max_entries:
            self._kept.popitem(last=False)
        self._kept[key] = _Kept(
            rendering,
            self._circuits() if stand_ins else None,
            self._kinds_of(tuple((part.source, part.outcome) for part in parts)),
            rendering.reusable_until if self._hold is None else
            min(rendering.reusable_until, now + self._hold),
        )  # fmt: skip

    def _kinds_of(self, kinds: Kinds) -> int:
        index = self._kinds.get(kinds)
        if index is None:  # a few dozen at most: sources times outcomes
            index = self._kinds[kinds] = len(self._counts)
            self._counts.append(0)
        return index

    def served(self) -> Iterator[tuple[Kinds, int]]:
        """The answers served again since the last call, by kinds of parts."""
        for kinds, index in self._kinds.items():
            if count := self._counts[index]:
                self._counts[index] = 0
                yield kinds, count

"""A participant's ``Cache-Control``, read as an HTTP cache would (RFC 9111). Pure.

The aggregator keeps parts for the callers of one scope (a tenant), so it honours
what a participant says of its answer:

- ``no-store``: not kept, and the answer showing it is ``no-store`` downstream;
- ``private``: not kept (the cache serves every caller of a scope), and the
  answer showing it is ``private`` downstream;
- ``no-cache``: not kept: it may not be used again without asking again;
- ``max-age=N`` (less the ``Age`` it came with): the part's time to live, when
  shorter than ours; ``max-age=0`` is never fresh, but may still stand in for a
  failed call like any stale part;
- ``must-revalidate``: never stands in for a failed call once past its time to live.

Without ``max-age``, ``Expires`` (less ``Date``) sets the time to live, and an
``Expires`` that is not a date (``0``, say) makes the part not fresh. A ``Vary``
naming ``*``, ``X-Request-ID``, ``traceparent`` or ``tracestate`` (the headers in
which our requests differ from one another) makes the answer one that may not be reused,
as ``no-cache`` does; the other headers we send are the same for every request
of a scope.

``s-maxage`` and ``proxy-revalidate`` are for shared caches between the
participant and its clients, and are ignored. Directive names are matched without
regard to case, across every ``Cache-Control`` line (the transport joins repeated
lines with commas); an unknown directive is ignored; a ``max-age`` that is not a
whole number makes the part not fresh, and of two the smaller counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class Directives:
    """What a participant said about keeping one of its answers."""

    no_store: bool = False
    private: bool = False
    no_cache: bool = False
    must_revalidate: bool = False
    max_age: float | None = None  # seconds of freshness left on arrival; None: not said

    @property
    def privacy(self) -> str | None:
        """What a cache downstream of the answer showing this part must be told:
        ``"no-store"``, ``"private"``, or None."""
        return "no-store" if self.no_store else "private" if self.private else None

    @property
    def storable(self) -> bool:
        """Whether the aggregator may keep the part to answer later requests."""
        return not (self.no_store or self.private or self.no_cache)


NONE = Directives()


def strictest_privacy(said: Iterable[str | None]) -> str | None:
    """The strictest of several ``privacy`` values: ``no-store`` over ``private``."""
    kinds = set(said)
    return "no-store" if "no-store" in kinds else "private" if "private" in kinds else None


def _seconds(value: str) -> int | None:
    value = value.strip().strip('"')
    return int(value) if value.isascii() and value.isdigit() else None


def parse(cache_control: str | None, age: str | None = None) -> Directives:
    """The directives of a ``Cache-Control`` value (lines joined by commas)."""
    if not cache_control:
        return NONE
    no_store = private = no_cache = must_revalidate = False
    max_age: int | None = None
    for item in cache_control.split(","):
        name, _, argument = item.partition("=")
        name = name.strip().lower()
        if name == "no-store":
            no_store = True
        elif name == "private":  # also private="field": a part of it is, so all of it is
            private = True
        elif name == "no-cache":
            no_cache = True
        elif name == "must-revalidate":
            must_revalidate = True
        elif name == "max-age":
            seconds = _seconds(argument)
            seconds = 0 if seconds is None else seconds
            max_age = seconds if max_age is None else min(max_age, seconds)
    left: float | None = None
    if max_age is not None:
        already = _seconds(age or "") or 0
        left = float(max(0, max_age - already))
    directives = Directives(no_store, private, no_cache, must_revalidate, left)
    return NONE if directives == NONE else directives


_PER_REQUEST = frozenset({"*", "x-request-id", "traceparent", "tracestate"})


def of_response(headers: Mapping[str, str], now: float) -> Directives:
    """What an answer's headers (names in lower case) say about keeping it;
    ``now`` (epoch seconds) stands in for a missing ``Date``."""
    directives = parse(headers.get("cache-control"), headers.get("age"))
    vary = headers.get("vary")
    if vary and _PER_REQUEST & {name.strip().lower() for name in vary.split(",")}:
        directives = replace(directives, no_cache=True)
    expires = headers.get("expires")
    if expires is not None and directives.max_age is None:
        lifetime = _lifetime(expires, headers.get("date"), now)
        already = _seconds(headers.get("age") or "") or 0
        directives = replace(directives, max_age=max(0.0, lifetime - already))
    return directives


def _lifetime(expires: str, date: str | None, now: float) -> float:
    """Seconds from ``Date`` (or now) to ``Expires``; 0 for a value that is not a date."""
    end = _epoch(expires)
    if end is None:
        return 0.0
    start = _epoch(date) if date else None
    return max(0.0, end - (now if start is None else start))


def _epoch(http_date: str) -> float | None:
    try:
        moment = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC, said without a zone
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

"""An answer: the parts of one status request, their verdict, and its renderings.

Everything that does not change while the same cached parts are served (the
verdict, each part's JSON but its age, the fingerprint, when the first part
expires) is computed once, in a ``Rendering``; an ``Answer`` adds only the time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any

from pydantic_core import to_json

from contracts import Outcome, Source, WorkflowStatus

from ._merge import _EPOCH, Verdict, as_status, judge, part_fields
from ._part import Part
from ._rules import WorkflowDefinition

_NEVER = float("-inf")


@dataclass(slots=True)
class Rendering:
    """What a set of parts says, rendered once for as long as the same parts are served.

    Treat it as immutable (it is not frozen only because building a frozen
    object of this many fields costs more than the rest of a cache hit).
    """

    workflow_id: str
    parts: Mapping[str, Part]
    verdict: Verdict
    template: bytes  # the answer's JSON, with %s where the time and each age go
    fetched: tuple[float | None, ...]  # each part's fetch time, None when not shown
    fingerprint: str  # over what the answer says, not when
    etag: str  # the fingerprint as a weak HTTP validator
    known: bool  # some participant's view can be shown
    unknown_everywhere: bool  # every participant said it has no record
    stale: bool  # some part shown is past its time to live
    oldest_fetch: float | None
    expires: float  # when the first shown part leaves the cache (-inf: one is stale)
    # Until when these parts may be served without asking again: the first cached
    # part's expiry, or a stand-in's end; -inf when any part was just fetched.
    reusable_until: float
    # The last JSON rendered and its time: answers within one millisecond share it.
    last_json: list[tuple[float, bytes]] = field(default_factory=list, compare=False)

    @classmethod
    def of(
        cls,
        definition: WorkflowDefinition,
        workflow_id: str,
        parts: Mapping[str, Part],
        *,
        ttl: float,
        terminal_ttl: float,
        stand_ins: Mapping[str, float] | None = None,
    ) -> Rendering:
        """``stand_ins``: parts given in place of a call (the circuit is open), each
        with the time until which it would be given again."""
        verdict = judge(definition, parts)
        # pydantic's own serializer, on plain values: the same bytes the models give,
        # without building them. The fields are in the models' order.
        prefix = to_json(
            {
                "workflow_id": workflow_id,
                "workflow": definition.name,
                "status": verdict.status,
                "complete": verdict.complete,
                "derived_from": verdict.derived_from,
                "anomalies": verdict.anomalies,
            }
        )
        # Everything rendered is escaped for %-formatting before the placeholders
        # are added, so no '%' in a participant's data can act as one.
        heads = [
            (to_json(name) + b":" + to_json(_json_fields(part))[:-1]).replace(b"%", b"%%")
            + b',"age_ms":%s}'
            for name, part in parts.items()
        ]
        template = (
            prefix[:-1].replace(b"%", b"%%")
            + b',"generated_at":"%s","participants":{'
            + b",".join(heads)
            + b"}}"
        )
        fetched = tuple(
            part.fetched_at if part.source is not None else None for part in parts.values()
        )
        expires = float("inf")  # of the shown parts that are not stale
        for name, part in parts.items():
            if part.source is None or part.source is Source.STALE or part.fetched_at is None:
                continue
            view = part.view
            final = view is not None and view.state in definition.by_name[name].terminal
            expires = min(expires, part.fetched_at + (terminal_ttl if final else ttl))
        stand_ins = stand_ins or {}
        reusable = bool(parts) and all(
            part.source is Source.CACHE or name in stand_ins for name, part in parts.items()
        )
        stale = any(part.source is Source.STALE for part in parts.values())
        shown = [at for at in fetched if at is not None]
        return cls(
            workflow_id=workflow_id,
            parts=dict(parts),
            verdict=verdict,
            template=template,
            fetched=fetched,
            fingerprint=(fingerprint := _fingerprint(prefix, parts)),
            etag=f'W/"{fingerprint}"',
            known=any(part.view is not None for part in parts.values()),
            unknown_everywhere=all(p.outcome is Outcome.NOT_FOUND for p in parts.values()),
            stale=stale,
            oldest_fetch=min(shown) if shown else None,
            expires=_NEVER if stale else expires,
            reusable_until=min([expires, *stand_ins.values()]) if reusable else _NEVER,
        )

    def serves(self, parts: Mapping[str, Part]) -> bool:
        """Whether these are the very parts this rendering was made of."""
        return len(parts) == len(self.parts) and all(
            a is b for a, b in zip(parts.values(), self.parts.values(), strict=True)
        )


def _json_fields(part: Part) -> dict[str, Any]:
    """``part_fields`` ready for to_json, which infers an enum member's type on every
    call (about 2 us each): the values are plain strings."""
    fields = part_fields(part)
    fields["outcome"] = part.outcome.value
    fields["source"] = None if part.source is None else part.source.value
    return fields


def _fingerprint(prefix: bytes, parts: Mapping[str, Part]) -> str:
    """Over what the answer says (status, anomalies, each part's outcome, state,
    version, error kind), not over when it was fetched or generated."""
    facts = [
        (
            name,
            part.outcome.value,
            None if part.view is None else (part.view.state, part.view.version),
            None if part.view is None else part.view.updated_at,
            None if part.error is None else part.error.kind.value,
        )
        for name, part in parts.items()
    ]
    return hashlib.blake2b(prefix + to_json(facts), digest_size=12).hexdigest()


@lru_cache(maxsize=4)
def _second(seconds: int) -> bytes:
    return (_EPOCH + timedelta(seconds=seconds)).isoformat()[:19].encode()


def _timestamp(now: float) -> bytes:
    """``moment(now)`` as pydantic renders it, at the cost of a division."""
    seconds, micros = divmod(round(now * 1_000_000), 1_000_000)
    return _second(seconds) + (b".%06dZ" % micros if micros else b"Z")


@dataclass(frozen=True, slots=True)
class Answer:
    """One status request's answer; ``status()`` and ``json()`` say the same thing."""

    definition: WorkflowDefinition
    rendering: Rendering
    now: float  # the clock's time, epoch seconds

    @property
    def workflow_id(self) -> str:
        return self.rendering.workflow_id

    @property
    def parts(self) -> Mapping[str, Part]:
        return self.rendering.parts

    @property
    def verdict(self) -> Verdict:
        return self.rendering.verdict

    def status(self) -> WorkflowStatus:
        return as_status(self.definition, self.workflow_id, self.verdict, self.parts, self.now)

    def json(self) -> bytes:
        """The answer as JSON: the bytes ``status().model_dump_json()`` gives, rendered fast."""
        now = self.now
        rendering = self.rendering
        last = rendering.last_json
        if last and last[0][0] == now:
            return last[0][1]
        ages = [
            b"null" if fetched is None else b"%d" % max(0, round((now - fetched) * 1000))
            for fetched in rendering.fetched
        ]
        rendered = rendering.template % (_timestamp(now), *ages)
        last[:] = [(now, rendered)]
        return rendered

    def oldest_age_ms(self) -> int:
        oldest = self.rendering.oldest_fetch
        return 0 if oldest is None else max(0, round((self.now - oldest) * 1000))

    def freshness(self) -> float:
        """Seconds until the first shown part leaves the cache (0 when any is stale)."""
        expires = self.rendering.expires
        return 0.0 if expires == float("inf") else max(0.0, expires - self.now)

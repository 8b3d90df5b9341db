"""An answer: the parts of one status request, their verdict, and its renderings.

Everything that does not change while the same cached parts are served (the
verdict, each part's JSON but its age, the fingerprint, when the first part
expires) is computed once, in a ``Rendering``; an ``Answer`` adds only the time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from pydantic_core import to_json

from contracts import Outcome, Source, WorkflowStatus

from ._cache import lifetime
from ._cache_control import strictest_privacy
from ._merge import _EPOCH, Disposition, Verdict, as_status
from ._part import Part
from ._rules import WorkflowDefinition

_NEVER = float("-inf")


@dataclass(slots=True, weakref_slot=True)
class Rendering:
    """What a set of parts says, rendered once for as long as the same parts are served.

    Treat it as immutable (it is not frozen only because building a frozen
    object of this many fields costs more than the rest of a cache hit). It can be
    referred to weakly, to follow its lifetime without extending it.
    """

    workflow_id: str
    parts: Mapping[str, Part]
    verdict: Verdict
    template: bytes  # the answer's JSON, with %s where the time and each age go
    fetched: tuple[float | None, ...]  # each part's fetch time, None when not shown
    fingerprint: str  # over what the answer says and for whom, not when
    # The strictest of what the shown parts' participants said about keeping them:
    # "no-store", "private", or None when nothing was said against it.
    privacy: str | None
    stale: bool  # some part shown is past its time to live
    # Some anomaly could not be confirmed: the next request tries again.
    tentative: bool
    oldest_fetch: float | None
    # When the first shown part leaves the cache or a duration anomaly falls due
    # (-inf: a part is stale, or an anomaly is tentative).
    expires: float
    # Until when these parts may be served without asking again: the first cached
    # part's expiry, a stand-in's end or a duration anomaly's due time; -inf when
    # any part was just fetched, or an anomaly is tentative.
    reusable_until: float
    # When a watch asks again: the first shown part that can be kept at all leaves
    # the cache (one its participant said not to keep is asked for then too), or a
    # duration anomaly falls due; -inf or inf when nothing shown is fresh.
    renew_at: float
    # The last JSON rendered and its time: answers within one millisecond share it.
    last_json: list[tuple[float, bytes]] = field(default_factory=list, compare=False)

    @classmethod
    def of(
        cls,
        definition: WorkflowDefinition,
        workflow_id: str,
        parts: Mapping[str, Part],
        verdict: Verdict,
        *,
        ttl: float,
        terminal_ttl: float,
        stand_ins: Mapping[str, float] | None = None,
        scope: str = "",
    ) -> Rendering:
        """``verdict``: what ``judge`` says of ``parts``; ``stand_ins``: parts given in
        place of a call (the circuit is open), each with the time until which it
        would be given again; ``scope``: whom the answer is for (the tenant), which
        its fingerprint covers."""
        # pydantic's own serializer, on plain values: the same bytes the models give,
        # without building them. The fields are in the models' order.
        head = to_json(
            {
                "workflow_id": workflow_id,
                "workflow": definition.name,
                "status": verdict.status,
                "complete": verdict.complete,
                "derived_from": verdict.derived_from,
                "anomalies": verdict.anomalies,
            }
        )
        # Each view's updated_at rendered once, for its part, since and the timeline
        # (a date is the dearest value to_json renders).
        updated = {
            name: to_json(part.view.updated_at)
            for name, part in parts.items()
            if part.view is not None
        }
        since = b"null"
        steps = []
        for name, state, at in verdict.timeline:
            steps.append(
                b'{"participant":%b,"state":%b,"at":%b}'
                % (_text(name), _text(state), updated[name])
            )
            # since is one of the parts' dates, this very object: another part's equal
            # instant may be written with another offset.
            if at is verdict.since:
                since = updated[name]
        prefix = head[:-1] + b',"since":%b,"timeline":[%b]}' % (since, b",".join(steps))
        stand_ins = stand_ins or {}
        heads: list[bytes] = []
        facts: list[object] = [scope]  # what the fingerprint is taken over
        fetched: list[float | None] = []
        expires = float("inf")  # of the shown parts that are not stale
        kept_until = expires  # of those that can be kept at all
        stale = False
        reusable = bool(parts)
        privacy: list[str | None] = []  # what each shown part's participant said
        for name, part in parts.items():
            view, source = part.view, part.source
            view_json = None if view is None else view.__pydantic_serializer__.to_json(view)
            # Escaped for %-formatting before the placeholder is added, so no '%' in
            # a participant's data can act as one.
            heads.append(
                _part_json(name, part, view_json, updated.get(name)).replace(b"%", b"%%")
                + b',"age_ms":%s}'
            )
            # Everything the part says but when: a validator of one representation
            # never matches another (another view's fields, another error, stale).
            facts.append(
                (
                    name,
                    part.outcome.value,
                    source is Source.STALE,
                    view_json,
                    None if part.error is None else (part.error.kind.value, part.error.detail),
                )
            )
            fetched.append(None if source is None else part.fetched_at)
            stale = stale or source is Source.STALE
            reusable = reusable and (source is Source.CACHE or name in stand_ins)
            if source is None:
                continue
            privacy.append(part.directives.privacy)
            if source is Source.STALE or part.fetched_at is None:
                continue
            terminal = definition.by_name[name].terminal
            life = lifetime(part, ttl=ttl, terminal_ttl=terminal_ttl, terminal=terminal)
            expires = min(expires, part.fetched_at + life)
            if life > 0:  # one that cannot be kept is asked for whenever another is
                kept_until = min(kept_until, part.fetched_at + life)
        template = (
            prefix[:-1].replace(b"%", b"%%")
            + b',"generated_at":"%s","participants":{'
            + b",".join(heads)
            + b"}}"
        )
        fingerprint = hashlib.blake2b(prefix + to_json(facts), digest_size=12).hexdigest()
        shown = [at for at in fetched if at is not None]
        tentative = not all(anomaly.confirmed for anomaly in verdict.anomalies)
        return cls(
            workflow_id=workflow_id,
            parts=dict(parts),
            verdict=verdict,
            template=template,
            fetched=tuple(fetched),
            fingerprint=fingerprint,
            privacy=strictest_privacy(privacy),
            stale=stale,
            tentative=tentative,
            oldest_fetch=min(shown) if shown else None,
            # An anomaly falling due changes what these parts say: until then only.
            expires=_NEVER if stale or tentative else min(expires, verdict.due),
            renew_at=_NEVER if stale or tentative else min(kept_until, verdict.due),
            reusable_until=(
                min([expires, verdict.due, *stand_ins.values()])
                if reusable and not tentative
                else _NEVER
            ),
        )

    def serves(self, parts: Mapping[str, Part]) -> bool:
        """Whether these are the very parts this rendering was made of."""
        return len(parts) == len(self.parts) and all(
            a is b for a, b in zip(parts.values(), self.parts.values(), strict=True)
        )


_OUTCOMES = {outcome: to_json(outcome.value) for outcome in Outcome}
_SOURCES: dict[Source | None, bytes] = {None: b"null"}
_SOURCES.update({source: to_json(source.value) for source in Source})
_NO_VIEW = b'"updated_at":null,"state":null,"version":null,"view":null'


def _part_json(name: str, part: Part, view_json: bytes | None, updated_json: bytes | None) -> bytes:
    """``"name":{...`` for one part, every field but its age, in ParticipantStatus's
    field order, as pydantic renders it.

    Assembled from pieces rather than by ``to_json`` over a dict of mixed values,
    which infers each value's type: the view by its own model's serializer.
    """
    view = part.view
    fetched = part.fetched_at if part.source is not None else None
    shown = (
        _NO_VIEW
        if view is None or view_json is None or updated_json is None
        else b'"updated_at":%b,"state":%b,"version":%d,"view":%b'
        % (
            updated_json,
            to_json(view.state),
            view.version,
            view_json,
        )
    )
    return b'%b:{"outcome":%b,"source":%b,"fetched_at":%b,%b,"error":%b' % (
        to_json(name),
        _OUTCOMES[part.outcome],
        _SOURCES[part.source],
        b"null" if fetched is None else to_json(datetime.fromtimestamp(fetched, UTC)),
        shown,
        b"null" if part.error is None else to_json(part.error),
    )


@lru_cache(maxsize=1024)
def _text(name: str) -> bytes:
    """A participant's name or a state (a definition has few) as JSON."""
    return to_json(name)


@lru_cache(maxsize=4)
def _second(seconds: int) -> bytes:
    return (_EPOCH + timedelta(seconds=seconds)).isoformat()[:19].encode()


def _timestamp(now: float) -> bytes:
    """``moment(now)`` as pydantic renders it, at the cost of a division."""
    seconds, micros = divmod(round(now * 1_000_000), 1_000_000)
    return _second(seconds) + (b".%06dZ" % micros if micros else b"Z")


class Answer:
    """One status request's answer; ``status()`` and ``json()`` say the same thing.

    Read-only. Not a frozen dataclass: one is made per cache hit, and a frozen
    dataclass's ``__init__`` costs 0.3 us more, a third of a hit in-process.
    """

    __slots__ = ("_definition", "_now", "_rendering")

    def __init__(self, definition: WorkflowDefinition, rendering: Rendering, now: float) -> None:
        self._definition = definition
        self._rendering = rendering
        self._now = now

    def __repr__(self) -> str:
        return f"Answer({self.workflow_id!r}, now={self._now!r})"

    @property
    def definition(self) -> WorkflowDefinition:
        return self._definition

    @property
    def rendering(self) -> Rendering:
        return self._rendering

    @property
    def now(self) -> float:
        """The clock's time the answer is given at, epoch seconds."""
        return self._now

    @property
    def workflow_id(self) -> str:
        return self._rendering.workflow_id

    @property
    def parts(self) -> Mapping[str, Part]:
        return self._rendering.parts

    @property
    def verdict(self) -> Verdict:
        return self._rendering.verdict

    @property
    def disposition(self) -> Disposition:
        return self._rendering.verdict.disposition

    def status(self) -> WorkflowStatus:
        return as_status(self._definition, self.workflow_id, self.verdict, self.parts, self._now)

    def json(self) -> bytes:
        """The answer as JSON: the bytes ``status().model_dump_json()`` gives, rendered fast."""
        now = self._now
        rendering = self._rendering
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
        oldest = self._rendering.oldest_fetch
        return 0 if oldest is None else max(0, round((self._now - oldest) * 1000))

    def freshness(self) -> float:
        """Seconds until the first shown part leaves the cache or an anomaly falls
        due: 0 when a part is stale, an anomaly tentative, or no part fresh."""
        expires = self._rendering.expires
        return 0.0 if expires == float("inf") else max(0.0, expires - self._now)

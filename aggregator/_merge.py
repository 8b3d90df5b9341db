"""The pure merge: participant parts in, a verdict and one WorkflowStatus out.

No awaits, no clock reads, no logging, no cache: the same inputs (the time
included) give the same answer. The status and completeness do not depend on
the time; duration anomalies do (``Verdict.due`` says when the next may), and
rendering the parts does, through their ages.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from operator import itemgetter

from contracts import (
    Anomaly,
    ErrorKind,
    Outcome,
    ParticipantStatus,
    Source,
    Step,
    WorkflowStatus,
)

from ._part import Part
from ._rules import ABSENT, AnomalyRule, WorkflowDefinition

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ANSWERED = (Outcome.OK, Outcome.NOT_FOUND)
_CURRENT = (Source.LIVE, Source.CACHE)


class Disposition(StrEnum):
    """Whether there is a workflow to show (the gateway maps it to 200, 404, 503)."""

    FOUND = "found"  # some participant's view can be shown
    NOT_FOUND = "not_found"  # every participant said it has no record
    UNAVAILABLE = "unavailable"  # nothing could be read, and nothing stands in


Moment = tuple[str, str, datetime]  # (participant, state, updated_at): a timeline step


@dataclass(slots=True)
class Verdict:
    """What the parts say together: the derived status and how far to trust it.

    Treat it as immutable (not frozen: one is made per miss, and a frozen
    dataclass's ``__init__`` costs a microsecond more at this many fields).
    """

    status: str
    derived_from: tuple[str, ...]
    anomalies: tuple[Anomaly, ...]
    complete: bool
    disposition: Disposition
    since: datetime | None  # when the parts that decided the status last changed
    timeline: tuple[Moment, ...]  # the shown parts' states, the earliest first
    # When the next duration anomaly falls due on these parts (epoch seconds; inf:
    # none will): an answer made of them says nothing about it before then.
    due: float = float("inf")
    # Participants to ask again before an anomaly can be confirmed: their parts
    # are older than the anomaly window allows.
    recheck: frozenset[str] = frozenset()


def known_state(part: Part) -> str | None:
    """The state the rules may use: the view's, ``absent`` for "no record", else unknown."""
    if part.view is not None:
        return part.view.state
    if part.outcome is Outcome.NOT_FOUND and part.source is not None:
        return ABSENT
    return None


def moment(now: float) -> datetime:
    """The clock's time (epoch seconds) as an aware datetime, to the microsecond."""
    return _EPOCH + timedelta(microseconds=round(now * 1_000_000))


def age_ms(part: Part, now: float) -> int | None:
    if part.source is None or part.fetched_at is None:
        return None
    return max(0, round((now - part.fetched_at) * 1000))


def render_part(part: Part, now: float) -> ParticipantStatus:
    """One part as the answer shows it at ``now``.

    Built without validation: every value comes from validated parts (the tests
    validate what this builds).
    """
    view = part.view
    fetched = part.fetched_at if part.source is not None else None
    return ParticipantStatus.model_construct(
        outcome=part.outcome,
        source=part.source,
        fetched_at=None if fetched is None else datetime.fromtimestamp(fetched, UTC),
        updated_at=None if view is None else view.updated_at,
        state=None if view is None else view.state,
        version=None if view is None else view.version,
        view=None if view is None else view.model_dump(mode="json"),
        error=part.error,
        age_ms=age_ms(part, now),
    )


def _regressions(parts: Mapping[str, Part]) -> list[Anomaly]:
    return [
        Anomaly(code="version_regression", message=part.error.detail, participants=(name,))
        for name, part in parts.items()
        if part.error is not None and part.error.kind is ErrorKind.VERSION_REGRESSION
    ]


def judge(
    definition: WorkflowDefinition,
    parts: Mapping[str, Part],
    now: float,
    *,
    unconfirmable: Collection[str] = (),
) -> Verdict:
    """Derive the workflow status from every participant's part, at ``now``.

    The status is derived from every part that can be shown, stale ones included;
    anomalies only from the parts that are current (live or cache). An anomaly is
    confirmed when the parts it rests on were fetched within the definition's
    window of each other; otherwise the participants whose parts are older are
    named in ``recheck``, unless they are ``unconfirmable`` (asked again in vain).
    """
    known = {name: known_state(part) for name, part in parts.items()}
    status, derived_from = definition.derive(known)
    # A stale part may lag behind the others; comparing it with them would report
    # contradictions that are only its age.
    current = {
        name: state if parts[name].source in _CURRENT else None for name, state in known.items()
    }
    anomalies, lasting = definition.matching_anomalies(current)
    due = float("inf")
    if lasting:
        anomalies, due = _add_due(definition, lasting, parts, now, anomalies)
    recheck: frozenset[str] = frozenset()
    if anomalies:
        anomalies, recheck = _confirm(definition.window, anomalies, parts, now, unconfirmable)
    return Verdict(
        status=status,
        derived_from=derived_from,
        anomalies=(*anomalies, *_regressions(parts)),
        complete=all(p.outcome in _ANSWERED and p.source in _CURRENT for p in parts.values()),
        disposition=_disposition(parts),
        since=_latest_update(parts, derived_from),
        timeline=_timeline(parts),
        due=due,
        recheck=recheck,
    )


def _add_due(
    definition: WorkflowDefinition,
    rules: tuple[AnomalyRule, ...],
    parts: Mapping[str, Part],
    now: float,
    anomalies: tuple[Anomaly, ...],
) -> tuple[tuple[Anomaly, ...], float]:
    """``anomalies`` with the duration rules that are due at ``now``; and when the
    first of the others falls due. A duration runs from the latest ``updated_at`` of
    the parts the condition names; one further ahead of ``now`` than the clock
    tolerance is a participant's clock fault and starts none."""
    raised = list(anomalies)
    due = float("inf")
    for rule in rules:
        assert rule.after_ms is not None  # matching_anomalies gives such rules apart
        latest = _latest_update(parts, rule.condition)
        if latest is None:
            continue  # every named part is absent: nothing says since when
        start = latest.timestamp()
        if start > now + definition.clock_tolerance:
            continue
        at = start + rule.after_ms / 1000
        if now >= at:
            raised.append(rule.anomaly)
        else:
            due = min(due, at)
    return tuple(raised), due


def _confirm(
    window: float,
    anomalies: tuple[Anomaly, ...],
    parts: Mapping[str, Part],
    now: float,
    unconfirmable: Collection[str],
) -> tuple[tuple[Anomaly, ...], frozenset[str]]:
    """Each anomaly marked confirmed or not; and the participants to ask again.

    When any anomaly is unconfirmed, every part any anomaly rests on that is older
    than the window allows is to be asked for again (not only the unconfirmed
    one's), so that all of them are judged on parts of one moment.
    """
    marked: list[Anomaly] = []
    involved: dict[str, float] = {}
    for anomaly in anomalies:
        fetched = {name: parts[name].fetched_at or 0.0 for name in anomaly.participants}
        involved.update(fetched)
        newest = max(fetched.values())
        if all(newest - at <= window for at in fetched.values()) and not any(
            name in unconfirmable for name in fetched
        ):
            marked.append(anomaly)
        else:
            marked.append(anomaly.model_copy(update={"confirmed": False}))
    if all(anomaly.confirmed for anomaly in marked):
        return tuple(marked), frozenset()
    # The latest moment known: a part may carry a fetch time a rounding past ``now``.
    latest = max(now, *involved.values())
    recheck = frozenset(
        name for name, at in involved.items() if latest - at > window and name not in unconfirmable
    )
    return tuple(marked), recheck


def _latest_update(parts: Mapping[str, Part], names: Iterable[str]) -> datetime | None:
    """The latest ``updated_at`` of the named parts that have a view (the object
    itself: its offset as the participant wrote it)."""
    updated = [
        part.view.updated_at
        for name in names
        if (part := parts.get(name)) is not None and part.view is not None
    ]
    return max(updated) if updated else None


def _timeline(parts: Mapping[str, Part]) -> tuple[Moment, ...]:
    steps = [
        (name, view.state, view.updated_at)
        for name, part in parts.items()
        if (view := part.view) is not None
    ]
    steps.sort(key=_AT)  # stable: ties keep the participants' order
    return tuple(steps)


_AT = itemgetter(2)


def _disposition(parts: Mapping[str, Part]) -> Disposition:
    if any(part.view is not None for part in parts.values()):
        return Disposition.FOUND
    if all(part.outcome is Outcome.NOT_FOUND for part in parts.values()):
        return Disposition.NOT_FOUND
    return Disposition.UNAVAILABLE


def merge(
    definition: WorkflowDefinition, workflow_id: str, parts: Mapping[str, Part], now: float
) -> WorkflowStatus:
    """One workflow's status from every participant's part, at ``now`` (epoch seconds)."""
    return as_status(definition, workflow_id, judge(definition, parts, now), parts, now)


def as_status(
    definition: WorkflowDefinition,
    workflow_id: str,
    verdict: Verdict,
    parts: Mapping[str, Part],
    now: float,
) -> WorkflowStatus:
    return WorkflowStatus.model_construct(
        workflow_id=workflow_id,
        workflow=definition.name,
        status=verdict.status,
        complete=verdict.complete,
        derived_from=verdict.derived_from,
        anomalies=verdict.anomalies,
        since=verdict.since,
        timeline=tuple(
            Step.model_construct(participant=name, state=state, at=at)
            for name, state, at in verdict.timeline
        ),
        generated_at=moment(now),
        participants={name: render_part(part, now) for name, part in parts.items()},
    )

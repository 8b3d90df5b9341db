"""The pure merge: participant parts in, a verdict and one WorkflowStatus out.

No awaits, no clock reads, no logging, no cache: the same inputs give the same
answer. The verdict (status, anomalies, completeness) does not depend on the
time; rendering the parts does, through their ages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from contracts import (
    Anomaly,
    ErrorKind,
    Outcome,
    ParticipantStatus,
    Source,
    WorkflowStatus,
)

from ._part import Part
from ._rules import ABSENT, WorkflowDefinition

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ANSWERED = (Outcome.OK, Outcome.NOT_FOUND)
_CURRENT = (Source.LIVE, Source.CACHE)


class Disposition(StrEnum):
    """Whether there is a workflow to show (the gateway maps it to 200, 404, 503)."""

    FOUND = "found"  # some participant's view can be shown
    NOT_FOUND = "not_found"  # every participant said it has no record
    UNAVAILABLE = "unavailable"  # nothing could be read, and nothing stands in


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the parts say together: the derived status and how far to trust it."""

    status: str
    derived_from: tuple[str, ...]
    anomalies: tuple[Anomaly, ...]
    complete: bool
    disposition: Disposition


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


def judge(definition: WorkflowDefinition, parts: Mapping[str, Part]) -> Verdict:
    """Derive the workflow status from every participant's part.

    The status is derived from every part that can be shown, stale ones included;
    anomalies only from the parts that are current (live or cache).
    """
    known = {name: known_state(part) for name, part in parts.items()}
    status, derived_from = definition.derive(known)
    # A stale part may lag behind the others; comparing it with them would report
    # contradictions that are only its age.
    current = {
        name: state if parts[name].source in _CURRENT else None for name, state in known.items()
    }
    return Verdict(
        status=status,
        derived_from=derived_from,
        anomalies=(*definition.detect(current), *_regressions(parts)),
        complete=all(p.outcome in _ANSWERED and p.source in _CURRENT for p in parts.values()),
        disposition=_disposition(parts),
    )


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
    return as_status(definition, workflow_id, judge(definition, parts), parts, now)


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
        generated_at=moment(now),
        participants={name: render_part(part, now) for name, part in parts.items()},
    )

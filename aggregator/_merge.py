"""The pure merge: participant parts and the current time in, one WorkflowStatus out.

No awaits, no clock reads, no logging, no cache: the same inputs give the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

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

_ANSWERED = (Outcome.OK, Outcome.NOT_FOUND)
_CURRENT = (Source.LIVE, Source.CACHE)


def known_state(part: Part) -> str | None:
    """The state the rules may use: the view's, ``absent`` for "no record", else unknown."""
    if part.view is not None:
        return part.view.state
    if part.outcome is Outcome.NOT_FOUND and part.source is not None:
        return ABSENT
    return None


def render_part(part: Part, now: float) -> ParticipantStatus:
    view = part.view
    fetched = part.fetched_at if part.source is not None else None
    return ParticipantStatus(
        outcome=part.outcome,
        source=part.source,
        age_ms=None if fetched is None else max(0, round((now - fetched) * 1000)),
        fetched_at=None if fetched is None else datetime.fromtimestamp(fetched, UTC),
        updated_at=None if view is None else view.updated_at,
        state=None if view is None else view.state,
        version=None if view is None else view.version,
        view=None if view is None else view.model_dump(mode="json"),
        error=part.error,
    )


def _regressions(parts: Mapping[str, Part]) -> list[Anomaly]:
    return [
        Anomaly(code="version_regression", message=part.error.detail, participants=(name,))
        for name, part in parts.items()
        if part.error is not None and part.error.kind is ErrorKind.VERSION_REGRESSION
    ]


def merge(
    definition: WorkflowDefinition, workflow_id: str, parts: Mapping[str, Part], now: float
) -> WorkflowStatus:
    """Derive one workflow status from every participant's part.

    The status is derived from every part that can be shown, stale ones included;
    anomalies only from the parts that are current (live or cache).

    ``parts`` holds one entry per participant of the definition; ``now`` is the
    clock's time in epoch seconds, used for ages and ``generated_at``.
    """
    known = {name: known_state(part) for name, part in parts.items()}
    status, derived_from = definition.derive(known)
    # A stale part may lag behind the others; comparing it with them would report
    # contradictions that are only its age.
    current = {
        name: state if parts[name].source in _CURRENT else None for name, state in known.items()
    }
    return WorkflowStatus(
        workflow_id=workflow_id,
        workflow=definition.name,
        status=status,
        complete=all(p.outcome in _ANSWERED and p.source in _CURRENT for p in parts.values()),
        generated_at=datetime.fromtimestamp(now, UTC),
        derived_from=derived_from,
        participants={name: render_part(part, now) for name, part in parts.items()},
        anomalies=(*definition.detect(current), *_regressions(parts)),
    )

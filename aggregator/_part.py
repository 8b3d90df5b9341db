"""A participant's part of one answer: the value the fetch layer hands to the merge."""

from __future__ import annotations

from dataclasses import dataclass

from contracts import ErrorKind, Outcome, PartError, ParticipantView, Source

from ._cache_control import NONE, Directives


@dataclass(frozen=True, slots=True)
class Part:
    """What one participant contributed to an answer.

    ``outcome`` is what happened when we asked (or what the cached answer was);
    ``source`` says where the view shown comes from, ``None`` when nothing can be
    shown; ``fetched_at`` is the clock's time (epoch seconds) of the fetch;
    ``directives`` is what the participant said about keeping its answer.
    """

    outcome: Outcome
    source: Source | None = None
    view: ParticipantView | None = None
    fetched_at: float | None = None
    error: PartError | None = None
    directives: Directives = NONE


def failure(outcome: Outcome, kind: ErrorKind, detail: str) -> Part:
    """A part that could not be fetched and has nothing to show."""
    return Part(outcome=outcome, error=PartError(kind=kind, detail=detail))

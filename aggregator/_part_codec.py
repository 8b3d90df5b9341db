"""A kept part as bytes, for a store shared by many processes, and back.

``<version>|<fresh until>|<meta>|<view>``: the view's version (``-1`` without a
view) and until when the part is fresh (epoch milliseconds) first, so that the
store's scripts read them without decoding JSON; then what the part needs
besides its view (outcome, fetched time, what its participant said about
keeping it); then the view as the participant's JSON, read back by the same
model, the same way as an answer is.

>>> from contracts import PaymentView
>>> view = PaymentView.model_validate_json(
...     '{"workflow_id": "o-1", "state": "captured", "version": 3,'
...     ' "updated_at": "2026-01-01T10:00:00Z", "amount": 1999, "currency": "EUR"}'
... )
>>> data = encode(Part(Outcome.OK, Source.LIVE, view, fetched_at=1767261600.5), 1767261602.5)
>>> data[:54]
b'3|1767261602500|["ok",1767261600.5,false,null]|{"workf'
>>> decode(data, PaymentView) == Part(Outcome.OK, Source.CACHE, view, fetched_at=1767261600.5)
True
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from contracts import Outcome, ParticipantView, Source

from ._cache_control import NONE, Directives
from ._part import Part

NO_VERSION = -1
_KEPT = (Outcome.OK, Outcome.NOT_FOUND)


class Undecodable(ValueError):
    """Bytes that are not a part this codec wrote (another version, another program)."""


def version_of(part: Part) -> int:
    return NO_VERSION if part.view is None else part.view.version


def encode(part: Part, fresh_until: float) -> bytes:
    """A kept part (ok or not found, fetched, storable), fresh until ``fresh_until``
    (epoch seconds), as bytes."""
    said = part.directives
    # By hand, as json.dumps would write it (outcome values are plain words): this is
    # on every miss's path.
    meta = b'["%s",%r,%s,%s]' % (
        part.outcome.value.encode(),
        part.fetched_at,
        b"true" if said.must_revalidate else b"false",
        b"null" if said.max_age is None else repr(float(said.max_age)).encode(),
    )
    view = b"" if part.view is None else part.view.model_dump_json().encode()
    return b"%d|%d|%s|%s" % (version_of(part), int(fresh_until * 1000), meta, view)


def decode(data: bytes, model: type[ParticipantView]) -> Part:
    """The part ``encode`` wrote, marked ``cache``; Undecodable if it is not one."""
    try:
        _, _, meta, view = data.split(b"|", 3)
        outcome_value, fetched_at, must_revalidate, max_age = json.loads(meta)
        outcome = Outcome(outcome_value)
        if outcome not in _KEPT or not isinstance(fetched_at, float | int):
            raise ValueError(outcome_value)
        shown = model.model_validate_json(view) if view else None
    except (ValueError, TypeError, ValidationError) as exc:
        raise Undecodable(f"not a kept part: {str(exc)[:80]}") from None
    if (shown is None) != (outcome is Outcome.NOT_FOUND):
        raise Undecodable("not a kept part: its view does not match its outcome")
    directives = (
        NONE
        if not must_revalidate and max_age is None
        else Directives(must_revalidate=bool(must_revalidate), max_age=max_age)
    )
    return Part(outcome, Source.CACHE, shown, float(fetched_at), None, directives)

"""The consumer side: the aggregator reads exactly what the contract declares."""

from __future__ import annotations

import json

import pytest

from aggregator import TransportResponse
from contracts import BUILTIN_VIEWS, Outcome, ParticipantStatus, ParticipantView
from contracts._schemas import SCHEMA_DIR
from tests.helpers import JSON, FakeNetwork, body, make_aggregator

READ_BY_THE_AGGREGATOR = {"workflow_id", "state", "version", "updated_at"}


def minimal(participant: str) -> dict[str, object]:
    """A body with only the fields the checked-in schema requires."""
    required = json.loads((SCHEMA_DIR / f"{participant}.v1.json").read_text())["required"]
    full = json.loads(body(participant, "o-1", BUILTIN_VIEWS[participant].states()[0]))
    return {name: full[name] for name in required}


def test_the_common_fields_are_what_the_aggregator_reads() -> None:
    assert set(ParticipantView.model_fields) == READ_BY_THE_AGGREGATOR
    for participant in BUILTIN_VIEWS:
        schema = json.loads((SCHEMA_DIR / f"{participant}.v1.json").read_text())
        assert set(schema["required"]) >= READ_BY_THE_AGGREGATOR


async def ask(participant: str, payload: dict[str, object]) -> ParticipantStatus:
    network = FakeNetwork({participant: TransportResponse(200, JSON, json.dumps(payload).encode())})
    agg = make_aggregator(network, seed=1)
    async with agg:
        return (await agg.status("o-1")).participants[participant]


@pytest.mark.parametrize("participant", sorted(BUILTIN_VIEWS))
async def test_a_body_with_only_the_required_fields_is_enough(participant: str) -> None:
    part = await ask(participant, minimal(participant))
    assert part.outcome == Outcome.OK


@pytest.mark.parametrize(
    ("participant", "field"),
    [(p, f) for p in sorted(BUILTIN_VIEWS) for f in minimal(p)],
)
async def test_every_required_field_is_needed(participant: str, field: str) -> None:
    payload = minimal(participant)
    del payload[field]
    part = await ask(participant, payload)
    assert part.outcome == Outcome.INVALID
    assert part.error is not None and part.error.detail.startswith(f"{field}: Field required")


@pytest.mark.parametrize("participant", sorted(BUILTIN_VIEWS))
async def test_undeclared_fields_are_ignored(participant: str) -> None:
    part = await ask(participant, {**minimal(participant), "added_in_v2": {"any": "thing"}})
    assert part.outcome == Outcome.OK
    assert part.view is not None and "added_in_v2" not in part.view

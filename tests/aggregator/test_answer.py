"""The fast rendering says exactly what the model says, byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import ORDER_FULFILMENT, Answer, Part, Rendering, judge
from contracts import (
    BUILTIN_VIEWS,
    ErrorKind,
    InventoryView,
    Outcome,
    PartError,
    ParticipantView,
    PaymentView,
    ShippingView,
    Source,
    WorkflowStatus,
)
from tests.helpers import body

NOW = 1_767_225_600.0
SAME_INSTANT = ["2026-01-01T10:00:00Z", "2026-01-01T11:00:00+01:00", "2026-01-01T12:00:00+02:00"]
MODELS: dict[str, type[ParticipantView]] = {
    "payment": PaymentView,
    "inventory": InventoryView,
    "shipping": ShippingView,
}


@st.composite
def parts(draw: st.DrawFn, name: str) -> Part:
    kind = draw(st.sampled_from(["ok", "not_found", "failed", "stale"]))
    fetched = NOW - draw(st.floats(min_value=0, max_value=120, allow_nan=False))
    error = PartError(
        kind=draw(st.sampled_from(list(ErrorKind))),
        # quotes, control characters, any unicode, and what %-formatting would act on
        detail=draw(st.text(max_size=30) | st.sampled_from(["%s}", "100%", "%%s", "%d%s"])),
    )
    if kind == "not_found":
        return Part(
            Outcome.NOT_FOUND, draw(st.sampled_from([Source.LIVE, Source.CACHE])), None, fetched
        )
    if kind == "failed":
        return Part(draw(st.sampled_from([Outcome.UNAVAILABLE, Outcome.INVALID])), error=error)
    state = draw(st.sampled_from(BUILTIN_VIEWS[name].states()))
    version = draw(st.integers(min_value=0, max_value=10**12))
    # One instant written with different offsets, and another: ties between parts
    # must render as the models do.
    updated = draw(st.sampled_from([*SAME_INSTANT, "2026-01-01T09:00:00Z"]))
    view = MODELS[name].model_validate_json(body(name, "o-1", state, version, updated_at=updated))
    if kind == "stale":
        return Part(Outcome.UNAVAILABLE, Source.STALE, view, fetched, error)
    return Part(Outcome.OK, draw(st.sampled_from([Source.LIVE, Source.CACHE])), view, fetched)


def answer_of(chosen: dict[str, Part], now: float, workflow_id: str = "o-1") -> Answer:
    rendering = Rendering.of(
        ORDER_FULFILMENT,
        workflow_id,
        chosen,
        judge(ORDER_FULFILMENT, chosen, now),
        ttl=2.0,
        terminal_ttl=10.0,
    )
    return Answer(ORDER_FULFILMENT, rendering, now)


@settings(max_examples=300, deadline=None)
@given(
    payment=parts("payment"),
    inventory=parts("inventory"),
    shipping=parts("shipping"),
    later=st.floats(min_value=0, max_value=5, allow_nan=False),
)
def test_json_is_the_models_json(
    payment: Part, inventory: Part, shipping: Part, later: float
) -> None:
    answer = answer_of(
        {"payment": payment, "inventory": inventory, "shipping": shipping}, NOW + later
    )
    status = answer.status()
    assert answer.json() == status.model_dump_json().encode()
    # the model is built without validation: check that it would pass it
    assert WorkflowStatus.model_validate(status.model_dump()) == status
    assert WorkflowStatus.model_validate_json(answer.json()) == status


def test_since_is_the_deciding_part_s_date_as_written_when_another_ties_with_it() -> None:
    """Paid, decided by the payment, whose update is the same instant as the
    inventory's but written with another offset: since is the payment's."""
    chosen = {
        name: Part(
            Outcome.OK,
            Source.LIVE,
            MODELS[name].model_validate_json(body(name, "o-1", state, updated_at=at)),
            NOW,
        )
        for name, state, at in (
            ("payment", "captured", SAME_INSTANT[0]),
            ("inventory", "pending", SAME_INSTANT[1]),
        )
    }
    answer = answer_of(chosen, NOW)
    assert answer.status().derived_from == ("payment",)
    assert answer.json() == answer.status().model_dump_json().encode()


def test_a_rendering_serves_only_its_own_parts() -> None:
    view = PaymentView.model_validate_json(body("payment", "o-1", "captured"))
    first = {"payment": Part(Outcome.OK, Source.CACHE, view, NOW)}
    same = dict(first)
    equal_but_new = {"payment": Part(Outcome.OK, Source.CACHE, view, NOW)}
    rendering = answer_of(first, NOW).rendering
    again = answer_of(equal_but_new, NOW).rendering
    assert rendering.serves(same)
    assert not rendering.serves(equal_but_new)
    assert again.fingerprint == rendering.fingerprint
    assert rendering.reusable_until == NOW + 2.0  # only parts that came from the cache
    live = {"payment": Part(Outcome.OK, Source.LIVE, view, NOW)}
    assert answer_of(live, NOW).rendering.reusable_until < NOW


def test_freshness_and_age() -> None:
    moving = ShippingView.model_validate_json(body("shipping", "o-1", "in_transit"))
    final = ShippingView.model_validate_json(body("shipping", "o-1", "delivered"))
    reserved = InventoryView.model_validate_json(body("inventory", "o-1", "reserved"))
    paid = PaymentView.model_validate_json(body("payment", "o-1", "captured"))
    answer = answer_of(
        {  # parts that agree: an unconfirmed anomaly would leave no freshness
            "payment": Part(Outcome.OK, Source.CACHE, paid, NOW - 0.5),
            "inventory": Part(Outcome.OK, Source.CACHE, reserved, NOW - 1.5),
            "shipping": Part(Outcome.OK, Source.LIVE, moving, NOW),
        },
        NOW,
    )
    assert answer.oldest_age_ms() == 1500
    assert round(answer.freshness(), 6) == 0.5  # inventory's part leaves the cache first
    fresh = answer_of({"shipping": Part(Outcome.OK, Source.CACHE, final, NOW - 7.0)}, NOW)
    assert round(fresh.freshness(), 6) == 3.0  # a final state stays 10 s
    assert fresh.oldest_age_ms() == 7000


def test_an_answer_is_read_only() -> None:
    view = PaymentView.model_validate_json(body("payment", "o-1", "captured"))
    answer = answer_of({"payment": Part(Outcome.OK, Source.CACHE, view, NOW)}, NOW)
    for name in ("definition", "rendering", "now", "workflow_id"):
        with pytest.raises(AttributeError):
            setattr(answer, name, None)
    with pytest.raises(AttributeError):
        answer.extra = 1  # type: ignore[attr-defined]
    assert answer.now == NOW and answer.workflow_id == "o-1"
    assert repr(answer) == f"Answer('o-1', now={NOW!r})"

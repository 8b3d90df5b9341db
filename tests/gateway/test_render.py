"""Answers given within one millisecond share their headers and body; older ones go."""

from __future__ import annotations

import gc
import weakref

from aggregator._answer import Answer, Rendering
from aggregator._merge import judge
from aggregator._part import Part
from aggregator.gateway._render import ResponseMemo
from contracts import Outcome, ShippingView, Source
from tests.helpers import body, settings

DEFINITION = settings().definition()


def rendering(workflow_id: str) -> Rendering:
    parts = {"shipping": Part(Outcome.NOT_FOUND, Source.CACHE, fetched_at=1_000.0)}
    return Rendering.of(
        DEFINITION, workflow_id, parts, judge(DEFINITION, parts, 1_000.0), ttl=2, terminal_ttl=30
    )


def test_one_millisecond_shares_headers_and_body() -> None:
    memo, one = ResponseMemo(), rendering("o-1")
    headers, body = memo.get(Answer(DEFINITION, one, 1_000.5))
    again = memo.get(Answer(DEFINITION, one, 1_000.5))
    other = memo.get(Answer(DEFINITION, rendering("o-2"), 1_000.5))
    later = memo.get(Answer(DEFINITION, one, 1_000.501))
    assert again[0] is headers and again[1] is body
    assert other[1] != body and b'"o-2"' in other[1]
    assert later[1] != body and b'"age_ms":501' in later[1]
    assert body == Answer(DEFINITION, one, 1_000.5).json()


def test_an_earlier_millisecond_holds_nothing() -> None:
    """An answer can be given again only within its millisecond: after it, the memo
    lets go of the rendering (and of the body and headers with it)."""
    memo, gone = ResponseMemo(), rendering("o-1")
    memo.get(Answer(DEFINITION, gone, 1_000.5))
    held = weakref.ref(gone)
    del gone
    gc.collect()
    assert held() is not None  # still its millisecond
    memo.get(Answer(DEFINITION, rendering("o-2"), 1_000.501))
    gc.collect()
    assert held() is None


def test_a_clock_that_stands_still_keeps_the_memo_bounded() -> None:
    memo = ResponseMemo(limit=2)
    first = rendering("o-1")
    memo.get(Answer(DEFINITION, first, 1_000.5))
    held = weakref.ref(first)
    del first
    for workflow_id in ("o-2", "o-3"):
        memo.get(Answer(DEFINITION, rendering(workflow_id), 1_000.5))
    gc.collect()
    assert held() is None


def test_an_answer_with_an_unconfirmed_anomaly_is_kept_by_no_cache() -> None:
    """The aggregator asks again on the next request; no cache downstream may keep
    the answer in the meantime. Confirmed, the same answer may be kept."""
    shipping = ShippingView.model_validate_json(body("shipping", "o-1", "in_transit"))
    parts = {
        "payment": Part(Outcome.NOT_FOUND, Source.CACHE, fetched_at=1_001.0),
        "inventory": Part(Outcome.NOT_FOUND, Source.CACHE, fetched_at=1_000.0),
        "shipping": Part(Outcome.OK, Source.CACHE, shipping, 1_001.0),
    }

    def cache_control(*unconfirmable: str) -> str:
        verdict = judge(DEFINITION, parts, 1_001.0, unconfirmable=unconfirmable)
        assert [a.code for a in verdict.anomalies] == [
            "shipment_before_payment",
            "shipment_without_stock",
        ]
        rendering = Rendering.of(DEFINITION, "o-1", parts, verdict, ttl=2, terminal_ttl=30)
        headers, _ = ResponseMemo().get(Answer(DEFINITION, rendering, 1_001.0))
        return headers["Cache-Control"]

    assert cache_control("inventory") == "no-store"
    parts["inventory"] = Part(Outcome.NOT_FOUND, Source.CACHE, fetched_at=1_001.0)
    assert cache_control() == "max-age=2"

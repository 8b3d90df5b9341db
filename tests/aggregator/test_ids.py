from __future__ import annotations

import pytest

from aggregator import ConfigError, IdPolicy, InvalidWorkflowId
from aggregator._ids import url_segment


@pytest.mark.parametrize(
    ("workflow_id", "segment"),
    [
        ("order-42", "order-42"),
        ("A", "A"),
        ("7", "7"),
        ("a.b_c-d", "a.b_c-d"),
        ("tenant:order:1", "tenant%3Aorder%3A1"),
        ("a" * 128, "a" * 128),
    ],
)
def test_allowed_ids_become_one_segment(workflow_id: str, segment: str) -> None:
    IdPolicy().check(workflow_id)
    assert url_segment(workflow_id) == segment


@pytest.mark.parametrize(
    "workflow_id",
    [
        "",
        "..",
        ".",
        "../admin",
        "a/b",
        "x?y=1",
        "x#frag",
        "%2e%2e",
        "a\x00b",
        "order\n",
        "-leading-dash",
        ".hidden",
        "//host",
        "ünïcode",
        "a b",
        "a" * 129,
        "a" * 1_000_000,
    ],
)
def test_refused_ids(workflow_id: str) -> None:
    with pytest.raises(InvalidWorkflowId):
        IdPolicy().check(workflow_id)


def test_a_non_string_is_refused() -> None:
    with pytest.raises(InvalidWorkflowId, match="must be a string"):
        IdPolicy().check(42)


def test_a_huge_id_is_not_echoed_in_full() -> None:
    with pytest.raises(InvalidWorkflowId) as caught:
        IdPolicy().check("a" * 500 + "/")
    assert len(str(caught.value)) < 200


def test_a_custom_pattern_cannot_let_dot_segments_through() -> None:
    permissive = IdPolicy(r"[^/]+")
    permissive.check("a?b")
    assert url_segment("a?b") == "a%3Fb"
    for dots in (".", ".."):
        with pytest.raises(InvalidWorkflowId):
            permissive.check(dots)


def test_a_broken_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="id_pattern"):
        IdPolicy("[unclosed")

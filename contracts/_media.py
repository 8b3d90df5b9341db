"""What a query answer's headers must say about its body: JSON, not encoded."""

from __future__ import annotations

from collections.abc import Mapping


def is_json(content_type: str) -> bool:
    """Whether a Content-Type names JSON: ``application/json`` or any
    ``application/*+json``, parameters and case aside.

    >>> is_json("application/problem+json; charset=utf-8"), is_json("text/json")
    (True, False)
    """
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def content_encoding(headers: Mapping[str, str]) -> str | None:
    """The body's encoding (in lower case) from headers with lower-case names; None
    for ``identity``, the only one the aggregator asks for and accepts."""
    encoding = headers.get("content-encoding", "").strip().lower()
    return None if encoding in ("", "identity") else encoding

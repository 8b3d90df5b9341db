"""RFC 9457 problem details: every error the gateway answers, with a stable type."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from contracts import Problem

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:status-aggregator:problem:"

TITLES = {
    "invalid-workflow-id": "Invalid workflow id",
    "workflow-not-found": "Workflow not found",
    "participants-unavailable": "No participant could be read",
    "overloaded": "Too many requests in flight",
    "unauthorized": "Missing or unknown credentials",
    "invalid-request": "Invalid request",
    "batch-too-large": "Too many ids in one batch",
    "not-found": "No such resource",
    "method-not-allowed": "Method not allowed",
    "payload-too-large": "Request body too large",
    "not-ready": "Not ready",
    "internal-error": "Internal error",
}


def problem_body(slug: str, status: int, detail: str, **extensions: Any) -> Problem:
    return Problem(
        type=TYPE_PREFIX + slug, title=TITLES[slug], status=status, detail=detail, **extensions
    )


def problem(
    slug: str,
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> web.Response:
    """A problem+json response, ``no-store``: an error says how things stood at one
    moment (a 404 in a choreography is often "not yet"), and RFC 9110 would let a
    cache keep some of them (404, 405, 501) by heuristic."""
    body = problem_body(slug, status, detail, **extensions)
    return web.Response(
        status=status,
        body=body.model_dump_json(exclude_none=True).encode(),
        content_type=PROBLEM_JSON,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )

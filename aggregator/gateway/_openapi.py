"""The OpenAPI 3.1 document, generated from the contract models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from aggregator import HARD_MAX_LENGTH
from contracts import BatchRequest, BatchResponse, Problem, WorkflowStatus

from ._problems import PROBLEM_JSON
from ._render import MAX_IF_NONE_MATCH

REF = "#/components/schemas/{model}"


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}},
    }


def _header(description: str, schema_type: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": schema_type}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(model: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=model)}


REQUEST_ID = _header("The request id: the client's X-Request-ID if safe, else a new one.")
RETRY_AFTER = _header("Seconds to wait before asking again.", "integer")


def _head_of(get: dict[str, Any]) -> dict[str, Any]:
    """HEAD as RFC 9110 has it: GET's status and headers, without a body."""
    responses = {
        code: {key: value for key, value in response.items() if key != "content"}
        for code, response in get["responses"].items()
    }
    head = {**get, "responses": responses, "summary": f"{get['summary']} (headers only)"}
    if "operationId" in get:
        head["operationId"] = get["operationId"] + "Head"
    return head


def _ui_paths() -> dict[str, Any]:
    """The operator page (``gateway.ui``): static files, no authentication of their own."""
    page = {
        "summary": "The operator page",
        "responses": {
            "200": {
                "description": "The page; its script reads the workflows API.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            "304": {"description": "Unchanged since the ETag given."},
        },
    }
    asset = {
        "summary": "One of the operator page's files",
        "parameters": [
            {"name": "asset", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "responses": {
            "200": {
                "description": "The file: a style sheet, a script or an icon.",
                "content": {"*/*": {"schema": {"type": "string"}}},
            },
            "304": {"description": "Unchanged since the ETag given."},
            "404": _problem("No such file."),
        },
    }
    return {
        path: {"get": get, "head": _head_of(get)}
        for path, get in (("/ui", page), ("/ui/{asset}", asset))
    }


def openapi_document(
    *, max_batch: int, auth: bool, id_pattern: str, ui: bool = False
) -> dict[str, Any]:
    """``id_pattern`` is matched in full, as the gateway does (JSON Schema's is not);
    ``ui`` adds the operator page's routes."""
    _, schemas = models_json_schema(
        [
            (WorkflowStatus, "serialization"),
            (Problem, "serialization"),
            (BatchRequest, "validation"),
            (BatchResponse, "serialization"),
        ],
        ref_template=REF,
    )
    private = "private, " if auth else ""
    caching = {
        "ETag": _header(
            "Weak validator over what the answer says and whom it is for; not over its "
            "times, ages, or whether a fresh part was fetched now or served from cache."
        ),
        "Age": _header("Age of the oldest part shown, in seconds.", "integer"),
        "Cache-Control": _header(
            f"{private}max-age=<Age + whole seconds of freshness left>; private when a part's "
            "participant said private; no-store when the answer is incomplete, stale, "
            "or shows a part its participant said not to store."
        ),
        "X-Request-ID": REQUEST_ID,
    }
    if auth:
        caching["Vary"] = _header("Authorization, X-API-Key: each answer is its tenant's.")
    status_headers = {
        **caching,
        "X-Workflow-Complete": _header("true when every part is live or freshly cached."),
    }
    common: dict[str, Any] = {
        "401": _problem("Missing or unknown credentials (authentication on)."),
        "503": {
            **_problem("Overloaded, or no participant could be read."),
            "headers": {"Retry-After": RETRY_AFTER, "X-Request-ID": REQUEST_ID},
        },
    }
    status_get: dict[str, Any] = {
        "operationId": "getWorkflowStatus",
        "summary": "The merged status of one workflow",
        "parameters": [
            {
                "name": "workflow_id",
                "in": "path",
                "required": True,
                "schema": {
                    "type": "string",
                    "pattern": f"^(?:{id_pattern})$",
                    "maxLength": HARD_MAX_LENGTH,
                },
            },
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": MAX_IF_NONE_MATCH},
            },
        ],
        "responses": {
            "200": {
                "description": "Some participant knows the workflow.",
                "headers": status_headers,
                "content": _json(_ref("WorkflowStatus")),
            },
            "304": {
                "description": "Unchanged since the ETag given: the same validator, no body.",
                "headers": status_headers,
            },
            "400": _problem("The workflow id fails validation."),
            "404": _problem("Every participant answered it has no record."),
            **common,
        },
    }
    events_get: dict[str, Any] = {
        "operationId": "watchWorkflowStatus",
        "summary": "The workflow's status as server-sent events, one per change",
        "description": (
            "`event: status` with `id:` the status's ETag and `data:` the status JSON: the "
            "current one first (unless `Last-Event-ID` names it), then one each time what "
            "the status says changes. `event: final` when the workflow is over, then the "
            "stream ends. `: heartbeat` comments keep an idle stream open; `retry:` is sent "
            "once. Refusals come before the stream, as problems."
        ),
        "parameters": [
            status_get["parameters"][0],
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            },
        ],
        "responses": {
            "200": {
                "description": "The stream of the workflow's statuses.",
                "headers": {
                    "Cache-Control": _header("no-store, no-transform"),
                    "X-Request-ID": REQUEST_ID,
                    **({"Vary": caching["Vary"]} if auth else {}),
                },
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            "204": {
                "description": "Last-Event-ID names the final status: nothing more will come "
                "(an EventSource stops reconnecting).",
            },
            "400": _problem("The workflow id fails validation."),
            "404": _problem("Every participant answered it has no record."),
            "401": common["401"],
            "503": {
                **_problem("Too many watchers, or the gateway is shutting down."),
                "headers": {"Retry-After": RETRY_AFTER, "X-Request-ID": REQUEST_ID},
            },
        },
    }
    health_get: dict[str, Any] = {
        "summary": "The process is alive",
        "responses": {
            "200": {
                "description": "Alive.",
                "content": _json(
                    {
                        "type": "object",
                        "properties": {"status": {"const": "alive"}},
                        "required": ["status"],
                    }
                ),
            }
        },
    }
    ready_get: dict[str, Any] = {
        "summary": "Configuration loaded, outbound session open, circuits",
        "responses": {
            "200": {
                "description": "Ready, with each participant's circuit.",
                "content": _json(
                    {
                        "type": "object",
                        "properties": {
                            "status": {"const": "ready"},
                            "workflow": {"type": "string"},
                            "participants": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "object",
                                    "properties": {
                                        "circuit": {"enum": ["closed", "open", "half_open"]}
                                    },
                                    "required": ["circuit"],
                                },
                            },
                            "store": {
                                "type": "object",
                                "description": "Where parts are kept: memory, or a shared"
                                " store; shared false while it is unavailable and this"
                                " process keeps its own parts (problem says why).",
                                "properties": {
                                    "backend": {"type": "string"},
                                    "shared": {"type": "boolean"},
                                    "problem": {"type": ["string", "null"]},
                                },
                                "required": ["backend"],
                            },
                        },
                        "required": ["status", "workflow", "participants", "store"],
                    }
                ),
            },
            "503": _problem("Not ready."),
        },
    }
    metrics_get: dict[str, Any] = {
        "summary": "Prometheus metrics",
        "responses": {
            "200": {
                "description": "Prometheus' text exposition format, version 0.0.4.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    }
    openapi_get: dict[str, Any] = {
        "summary": "This document",
        "responses": {
            "200": {
                "description": "The OpenAPI 3.1 document of this gateway.",
                "content": _json({"type": "object"}),
            }
        },
    }
    gets = {
        "/workflows/{workflow_id}/status": status_get,
        "/healthz": health_get,
        "/readyz": ready_get,
        "/metrics": metrics_get,
        "/openapi.json": openapi_get,
    }
    paths: dict[str, Any] = {
        path: {"get": get, "head": _head_of(get)} for path, get in gets.items()
    }
    paths["/workflows/{workflow_id}/events"] = {"get": events_get}
    if ui:
        paths.update(_ui_paths())
    paths["/workflows/status:batch"] = {
        "post": {
            "operationId": "getWorkflowStatuses",
            "summary": f"Statuses of up to {max_batch} workflows, one entry per id",
            "requestBody": {"required": True, "content": _json(_ref("BatchRequest"))},
            "responses": {
                "200": {
                    "description": "One entry per id, in order.",
                    "headers": {
                        "Cache-Control": _header(
                            "The strictest entry's: no-store or private when any entry "
                            "shows such a part; absent otherwise."
                        ),
                        "X-Request-ID": REQUEST_ID,
                    },
                    "content": _json(_ref("BatchResponse")),
                },
                "400": _problem(f"Not a valid batch, or more than {max_batch} ids."),
                "413": _problem("The body is larger than the gateway reads."),
                **common,
            },
        }
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Choreography status aggregator",
            "version": "1",
            "description": "Reconstructs a choreographed workflow's status on demand.",
        },
        "paths": paths,
        "components": {"schemas": schemas["$defs"]},
    }
    if auth:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        for path in (
            "/workflows/{workflow_id}/status",
            "/workflows/{workflow_id}/events",
            "/workflows/status:batch",
        ):
            for operation in paths[path].values():
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
    return document

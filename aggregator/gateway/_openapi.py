"""The OpenAPI 3.1 document, generated from the contract models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from aggregator._ids import HARD_MAX_LENGTH
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


def openapi_document(*, max_batch: int, auth: bool, id_pattern: str) -> dict[str, Any]:
    """``id_pattern`` is matched in full, as the gateway does (JSON Schema's is not)."""
    _, schemas = models_json_schema(
        [
            (WorkflowStatus, "serialization"),
            (Problem, "serialization"),
            (BatchRequest, "validation"),
            (BatchResponse, "serialization"),
        ],
        ref_template=REF,
    )
    status_headers = {
        "ETag": _header("Weak validator over the content that matters."),
        "Age": _header("Age of the oldest part shown, in seconds.", "integer"),
        "Cache-Control": _header("max-age=<Age + remaining freshness>, or no-store."),
        "X-Workflow-Complete": _header("true when every part is live or freshly cached."),
        "X-Request-ID": _header("The request id, echoed or generated."),
    }
    common: dict[str, Any] = {
        "401": _problem("Missing or unknown credentials (authentication on)."),
        "503": _problem("Overloaded, or no participant could be read (Retry-After set)."),
    }
    json_of = {"application/json": {"schema": {"$ref": REF.format(model="WorkflowStatus")}}}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Choreography status aggregator",
            "version": "1",
            "description": "Reconstructs a choreographed workflow's status on demand.",
        },
        "paths": {
            "/workflows/{workflow_id}/status": {
                "get": {
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
                            "content": json_of,
                        },
                        "304": {"description": "Unchanged since the ETag given."},
                        "400": _problem("The workflow id fails validation."),
                        "404": _problem("Every participant answered it has no record."),
                        **common,
                    },
                }
            },
            "/workflows/status:batch": {
                "post": {
                    "operationId": "getWorkflowStatuses",
                    "summary": f"Statuses of up to {max_batch} workflows, one entry per id",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model="BatchRequest")}
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "One entry per id, in order.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": REF.format(model="BatchResponse")}
                                }
                            },
                        },
                        "400": _problem(f"Not a valid batch, or more than {max_batch} ids."),
                        **common,
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The process is alive",
                    "responses": {"200": {"description": "Alive."}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Configuration loaded, outbound session open, circuits",
                    "responses": {"200": {"description": "Ready."}, "503": _problem("Not ready.")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "Text format."}},
                }
            },
        },
        "components": {"schemas": schemas["$defs"]},
    }
    if auth:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        paths = document["paths"]
        for operation in (
            paths["/workflows/{workflow_id}/status"]["get"],
            paths["/workflows/status:batch"]["post"],
        ):
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
    return document

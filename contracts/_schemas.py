"""JSON Schemas of the contract models, as checked in under ``contracts/schemas/``."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from ._api import BatchRequest, BatchResponse, Problem
from ._status import WorkflowStatus
from ._views import CONTRACT_VERSION, GenericView, InventoryView, PaymentView, ShippingView

SCHEMA_DIR = Path(__file__).parent / "schemas"

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    f"payment.{CONTRACT_VERSION}.json": PaymentView,
    f"inventory.{CONTRACT_VERSION}.json": InventoryView,
    f"shipping.{CONTRACT_VERSION}.json": ShippingView,
    f"generic.{CONTRACT_VERSION}.json": GenericView,
    f"workflow-status.{CONTRACT_VERSION}.json": WorkflowStatus,
    f"batch-request.{CONTRACT_VERSION}.json": BatchRequest,
    f"batch-response.{CONTRACT_VERSION}.json": BatchResponse,
    f"problem.{CONTRACT_VERSION}.json": Problem,
}


def render_schemas() -> dict[str, str]:
    """Each schema file's name and its exact text."""
    return {
        name: json.dumps(model.model_json_schema(mode="serialization"), indent=2, sort_keys=True)
        + "\n"
        for name, model in SCHEMA_MODELS.items()
    }


def write_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Write every schema; return the names of the files that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = outdated_schemas(directory)
    for name, text in render_schemas().items():
        (directory / name).write_text(text, encoding="utf-8")
    return changed


def outdated_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    outdated = []
    for name, text in render_schemas().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            outdated.append(name)
    return outdated

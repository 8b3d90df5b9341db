"""Schema evolution: real before/after pairs, classified as breaking or compatible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts import InventoryView, ParticipantView, PaymentView, ShippingView
from contracts._evolution import compare
from contracts._schemas import SCHEMA_DIR


def schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="serialization")


def changes(old: type[BaseModel], new: type[BaseModel]) -> list[str]:
    return [str(change) for change in compare(schema(old), schema(new))]


class PaymentAddsFields(ParticipantView):
    state: Literal["pending", "authorized", "captured", "failed", "refunded", "disputed"]
    amount: int = Field(ge=0)
    currency: str
    captured_at: str | None = None


class PaymentRemovesAndNarrows(ParticipantView):
    state: Literal["pending", "authorized", "captured", "failed"]
    amount: str


class PaymentVersionOptional(BaseModel):
    workflow_id: str
    state: Literal["pending", "authorized", "captured", "failed", "refunded"]
    version: int | None = None
    updated_at: str
    amount: int
    currency: str
    method: str


class Item(BaseModel):
    sku: str


class InventoryItemLosesQuantity(ParticipantView):
    state: Literal["pending", "reserved", "out_of_stock", "released"]
    items: tuple[Item, ...] = ()


class ShippingCarrierRequired(ParticipantView):
    state: Literal["pending", "scheduled", "in_transit", "delivered", "cancelled"]
    carrier: str
    tracking_number: str | None = None


def test_the_same_schema_has_no_changes() -> None:
    for model in (PaymentView, InventoryView, ShippingView):
        assert compare(schema(model), schema(model)) == []


def test_added_fields_and_enum_values_are_compatible() -> None:
    assert changes(PaymentView, PaymentAddsFields) == [
        "compatible state: enum value 'disputed' added",
        "compatible captured_at: field added",
    ]


def test_removed_fields_narrowed_types_and_removed_values_are_breaking() -> None:
    assert changes(PaymentView, PaymentRemovesAndNarrows) == [
        "breaking   amount: type changed from ['integer'] to ['string']",
        "breaking   currency: field removed",
        "breaking   state: enum value 'refunded' removed",
    ]


def test_required_changes_are_breaking() -> None:
    assert changes(PaymentView, PaymentVersionOptional) == [
        "breaking   version: field no longer required",
        "breaking   version: type widened from ['integer'] to ['integer', 'null']",
        "breaking   method: field added (required)",
    ]
    assert changes(ShippingView, ShippingCarrierRequired) == [
        "breaking   carrier: field made required",
        "breaking   carrier: type narrowed from ['null', 'string'] to ['string']",
    ]


def test_nested_objects_are_compared_through_references() -> None:
    assert changes(InventoryView, InventoryItemLosesQuantity) == [
        "breaking   items[].quantity: field removed"
    ]


def test_the_command_exits_1_on_breaking_changes(tmp_path: Path) -> None:
    old = SCHEMA_DIR / "payment.v1.json"
    compatible = tmp_path / "payment.v2.json"
    compatible.write_text(json.dumps(schema(PaymentAddsFields)))
    breaking = tmp_path / "payment.v3.json"
    breaking.write_text(json.dumps(schema(PaymentRemovesAndNarrows)))

    def diff(a: Path, b: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "contracts", "diff", str(a), str(b)]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)

    ok = diff(old, compatible)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == "0 breaking, 2 compatible"
    bad = diff(old, breaking)
    assert bad.returncode == 1 and bad.stdout.splitlines()[-1] == "3 breaking, 0 compatible"
    assert "breaking   currency: field removed" in bad.stdout
    missing = diff(old, tmp_path / "absent.json")
    assert missing.returncode == 2 and "cannot read a JSON Schema" in missing.stderr

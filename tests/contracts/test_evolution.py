"""Schema evolution: real before/after pairs, classified as breaking or compatible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts import InventoryView, ParticipantView, PaymentView, ShippingView
from contracts._evolution import Coverage, compare
from contracts._schemas import SCHEMA_DIR


def schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="serialization")


def changes(old: type[BaseModel], new: type[BaseModel]) -> list[str]:
    return [str(change) for change in compare(schema(old), schema(new))]


class PaymentAddsFields(ParticipantView):
    state: Literal["pending", "authorized", "captured", "failed", "refunded", "disputed"]
    amount: int = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    captured_at: str | None = None


class PaymentAddsAField(PaymentView):
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


def test_added_fields_are_compatible_and_an_added_state_needs_the_rules() -> None:
    assert changes(PaymentView, PaymentAddsFields) == [
        "breaking   state: state 'disputed' added: breaking unless your aggregator's rules "
        "cover it (check with: status-aggregator diff OLD NEW --config aggregator.toml"
        " --participant NAME, where the aggregator is installed)",
        "compatible captured_at: field added",
    ]
    covered = Coverage(
        "order_fulfilment", "payment", frozenset({*PaymentView.states(), "disputed"})
    )
    judged = compare(schema(PaymentView), schema(PaymentAddsFields), coverage=covered)
    assert str(judged[0]) == (
        "compatible state: state 'disputed' added, covered by the rules of workflow "
        "order_fulfilment"
    )
    uncovered = Coverage("order_fulfilment", "payment", frozenset(PaymentView.states()))
    judged = compare(schema(PaymentView), schema(PaymentAddsFields), coverage=uncovered)
    assert str(judged[0]) == (
        "breaking   state: state 'disputed' of payment is not covered by the rules of "
        "workflow order_fulfilment: add a status rule for it"
    )


def test_removed_fields_and_changed_types_are_breaking_removed_values_are_not() -> None:
    # Every state the new schema allows, the old reader accepts: removing one is safe.
    assert changes(PaymentView, PaymentRemovesAndNarrows) == [
        "breaking   amount: type changed from ['integer'] to ['string']: "
        "the old reader refuses ['string']",
        "breaking   currency: field removed: the old reader requires it",
        "compatible state: enum value 'refunded' removed",
    ]


def test_a_field_no_longer_required_breaks_a_field_made_required_does_not() -> None:
    assert changes(PaymentView, PaymentVersionOptional) == [
        "breaking   amount: minimum 0 removed: the old reader refuses more",
        "breaking   currency: pattern '^[A-Z]{3}$' removed: the old reader refuses more",
        "breaking   updated_at: format 'date-time' removed: the old reader refuses more",
        "breaking   version: field no longer required: the old reader requires it",
        "breaking   version: type widened from ['integer'] to ['integer', 'null']: "
        "the old reader refuses ['null']",
        "breaking   version: minimum 0 removed: the old reader refuses more",
        "breaking   workflow_id: minLength 1 removed: the old reader refuses more",
        "breaking   workflow_id: maxLength 128 removed: the old reader refuses more",
        "compatible method: field added (required)",
    ]
    assert changes(ShippingView, ShippingCarrierRequired) == [
        "compatible carrier: field made required",
        "compatible carrier: type narrowed from ['null', 'string'] to ['string']",
    ]


def test_nested_objects_are_compared_through_references() -> None:
    assert changes(InventoryView, InventoryItemLosesQuantity) == [
        "breaking   items[].quantity: field removed: the old reader requires it",
        "breaking   items[].sku: minLength 1 removed: the old reader refuses more",
        "breaking   items[].sku: maxLength 64 removed: the old reader refuses more",
    ]


def test_the_command_exits_1_on_breaking_changes(tmp_path: Path) -> None:
    old = SCHEMA_DIR / "payment.v1.json"
    compatible = tmp_path / "payment.v2.json"
    compatible.write_text(json.dumps(schema(PaymentAddsAField)))
    breaking = tmp_path / "payment.v3.json"
    breaking.write_text(json.dumps(schema(PaymentRemovesAndNarrows)))

    def diff(a: Path, b: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "contracts", "diff", str(a), str(b)]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)

    ok = diff(old, compatible)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == "0 breaking, 1 compatible"
    bad = diff(old, breaking)
    assert bad.returncode == 1 and bad.stdout.splitlines()[-1] == "2 breaking, 1 compatible"
    assert "breaking   currency: field removed" in bad.stdout
    state = tmp_path / "payment.v4.json"
    state.write_text(json.dumps(schema(PaymentAddsFields)))
    added = diff(old, state)
    assert added.returncode == 1 and "unless your aggregator's rules cover it" in added.stdout
    missing = diff(old, tmp_path / "absent.json")
    assert missing.returncode == 2 and "cannot read a JSON Schema" in missing.stderr

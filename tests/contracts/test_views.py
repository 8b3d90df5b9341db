"""The participant contract models and their checked-in JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts import BUILTIN_VIEWS, GenericView, PaymentView, ShippingView
from contracts._schemas import SCHEMA_DIR, render_schemas
from contracts.cli import main
from tests.helpers import body


def test_checked_in_schemas_match_the_models() -> None:
    """Run `make schemas` when this fails, and review the diff as a contract change."""
    for name, text in render_schemas().items():
        assert (SCHEMA_DIR / name).read_text(encoding="utf-8") == text, name


def test_the_schema_command_writes_and_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schemas", "--check", "--dir", str(tmp_path)]) == 1
    assert "outdated" in capsys.readouterr().err
    assert main(["schemas", "--dir", str(tmp_path)]) == 0
    assert main(["schemas", "--check", "--dir", str(tmp_path)]) == 0
    schema = json.loads((tmp_path / "payment.v1.json").read_text())
    assert schema["properties"]["state"]["enum"] == list(PaymentView.states())
    assert set(schema["required"]) >= {"workflow_id", "state", "version", "updated_at"}


def test_every_state_of_every_model_parses() -> None:
    for name, model in BUILTIN_VIEWS.items():
        for state in model.states():
            assert model.model_validate_json(body(name, "o-1", state)).state == state


def test_unknown_fields_are_ignored_by_the_typed_models() -> None:
    view = ShippingView.model_validate_json(body("shipping", "o-1", "scheduled", eta="tomorrow"))
    assert "eta" not in view.model_dump()


def test_the_generic_model_passes_other_fields_through() -> None:
    view = GenericView.model_validate_json(body("flight", "t-1", "booked", seat="12A"))
    assert view.model_dump(mode="json")["seat"] == "12A"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"state": "teleported"}, "state"),
        ({"version": -1}, "version"),
        ({"updated_at": "2026-01-01T10:00:00"}, "updated_at"),  # no offset: ambiguous
        ({"currency": "euro"}, "currency"),
        ({"workflow_id": ""}, "workflow_id"),
    ],
)
def test_contract_violations(change: dict[str, object], field: str) -> None:
    payload = {**json.loads(body("payment", "o-1", "captured")), **change}
    with pytest.raises(ValidationError) as caught:
        PaymentView.model_validate(payload)
    assert caught.value.errors()[0]["loc"] == (field,)

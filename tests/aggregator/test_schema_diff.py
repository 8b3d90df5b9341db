"""``status-aggregator diff``: a participant's schema change judged against the
rules of the aggregator's workflow, which decide whether an added state is read."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from aggregator import ORDER_FULFILMENT
from aggregator._cli import main
from contracts._schemas import SCHEMA_DIR

OLD = SCHEMA_DIR / "payment.v1.json"
STATES = ["pending", "authorized", "captured", "failed", "refunded"]

CONFIG = """
workflow = "{workflow}"

[participants.payment]
url = "http://127.0.0.1:8101/payments/{{workflow_id}}"

[workflows.billing.participants]
payment = {{ states = {states}, terminal = ["failed"] }}

[[workflows.billing.rules]]
status = "paid"
when = {{ payment = {states} }}
"""


def with_state(tmp_path: Path, state: str, name: str = "payment.v2.json") -> Path:
    schema: dict[str, Any] = json.loads(OLD.read_text())
    new = copy.deepcopy(schema)
    new["properties"]["state"]["enum"].append(state)
    path = tmp_path / name
    path.write_text(json.dumps(new))
    return path


def config(tmp_path: Path, states: list[str], workflow: str = "billing") -> Path:
    path = tmp_path / "aggregator.toml"
    path.write_text(CONFIG.format(workflow=workflow, states=json.dumps(states)))
    return path


def test_the_built_in_rules_cover_every_declared_state() -> None:
    assert ORDER_FULFILMENT.covered_states("payment") == frozenset(STATES)


def test_without_a_config_the_built_in_rules_judge_an_added_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", str(OLD), str(with_state(tmp_path, "chargeback"))]) == 1
    out = capsys.readouterr().out
    assert (
        "state 'chargeback' of payment is not covered by the rules of workflow "
        "order_fulfilment: add a status rule for it"
    ) in out


def test_a_state_the_configured_rules_cover_is_compatible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = config(tmp_path, [*STATES, "chargeback"])
    new = with_state(tmp_path, "chargeback")
    assert main(["diff", str(OLD), str(new), "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert (
        "compatible state: state 'chargeback' added, covered by the rules of workflow billing"
        in out
    )
    assert out.splitlines()[-1] == "0 breaking, 1 compatible"


def test_a_state_the_configured_rules_miss_is_breaking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = config(tmp_path, STATES)
    new = with_state(tmp_path, "chargeback")
    assert main(["diff", str(OLD), str(new), "--config", str(toml)]) == 1
    assert "not covered by the rules of workflow billing" in capsys.readouterr().out


def test_workflow_and_participant_can_be_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = config(tmp_path, [*STATES, "chargeback"])
    new = with_state(tmp_path, "chargeback", name="next.json")
    argv = ["diff", str(OLD), str(new), "--config", str(toml), "--participant", "payment"]
    assert main([*argv, "--workflow", "billing"]) == 0
    assert main(["diff", str(OLD), str(new)]) == 2
    assert "pass --participant NAME" in capsys.readouterr().err
    assert main(["diff", str(OLD), str(new), "--workflow", "travel"]) == 2
    assert "is not built in" in capsys.readouterr().err


def test_an_unreadable_schema_is_a_usage_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", str(OLD), str(tmp_path / "payment.absent.json")]) == 2
    assert "cannot read a JSON Schema" in capsys.readouterr().err

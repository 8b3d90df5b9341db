"""The contract as a Pact V4 file, for teams that verify providers with Pact.

``python -m contracts pact payment --out pacts/`` writes
``pacts/status-aggregator-payment.json``: consumer ``status-aggregator``,
provider ``payment``, one interaction per state of the participant (its
provider state's parameters are the kit's state hook body: participant, state
and workflow id) and one for a workflow the provider never saw (a 404). Each
answer's body holds the fields the contract requires, with matching rules from
the model: the id and the state (each interaction's own) by equality, integers
by type (not their sign: the kit checks that), patterns as they are, date-times
by an RFC 3339 expression; the content type as any JSON media type.
Fields a reader ignores are never expected.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from ._stub import example
from ._views import PLACEHOLDER, RFC3339, Contract, ParticipantView

CONSUMER = "status-aggregator"
# What the aggregator reads as JSON (contracts._media): application/json or a +json
# type, any parameters, in any case.
JSON_MEDIA_TYPE = r"(?i)^application/(json|[^;\s]*\+json)\s*(;.*)?$"
EXAMPLE_TIME = datetime(2026, 1, 1, 10, tzinfo=UTC)  # the same file at every run
# The contract's own form (contracts._views), anchored, its named group plain.
RFC_3339 = "^" + RFC3339.pattern.replace("(?P<second>", "(") + "$"


def _rule(**matcher: Any) -> dict[str, Any]:
    return {"combine": "AND", "matchers": [matcher]}


def _rules(model: type[ParticipantView]) -> dict[str, dict[str, Any]]:
    """A matching rule per field the contract requires, from its JSON Schema."""
    schema = model.model_json_schema()
    rules: dict[str, dict[str, Any]] = {}
    for name in schema.get("required", []):
        field: dict[str, Any] = schema["properties"][name]
        if name in ("workflow_id", "state"):  # each interaction's own: exactly
            rules[f"$.{name}"] = _rule(match="equality")
        elif field.get("format") == "date-time":
            rules[f"$.{name}"] = _rule(match="regex", regex=RFC_3339)
        elif "pattern" in field:
            rules[f"$.{name}"] = _rule(match="regex", regex=field["pattern"])
        elif field.get("type") == "integer":
            rules[f"$.{name}"] = _rule(match="integer")
        else:
            rules[f"$.{name}"] = _rule(match="type")
    return rules


def pact(contract: Contract) -> dict[str, Any]:
    """The Pact V4 document of a participant's contract."""
    participant, model, template = contract.participant, contract.model, contract.path
    required = set(model.model_json_schema().get("required", []))
    rules = _rules(model)
    interactions = []
    for state in model.states():
        workflow_id = f"pact-{state}-1"
        full = example(participant, workflow_id, state, 1, EXAMPLE_TIME, model=model)
        body = {k: v for k, v in full.items() if k in required}
        interactions.append(
            {
                "type": "Synchronous/HTTP",
                "description": f"the {participant} record of a workflow in state {state!r}",
                "providerStates": [
                    {
                        "name": f"{participant} has {workflow_id} in state {state}",
                        "params": {
                            "participant": participant,
                            "state": state,
                            "workflow_id": workflow_id,
                        },
                    }
                ],
                "request": _request(template, workflow_id),
                "response": {
                    "status": 200,
                    "headers": {"Content-Type": ["application/json"]},
                    "body": {"content": body, "contentType": "application/json", "encoded": False},
                    "matchingRules": {
                        "body": rules,
                        "header": {"Content-Type": _rule(match="regex", regex=JSON_MEDIA_TYPE)},
                    },
                },
            }
        )
    unknown = "pact-never-seen-1"
    interactions.append(
        {
            "type": "Synchronous/HTTP",
            "description": f"a workflow {participant} never saw",
            "providerStates": [{"name": f"{participant} has no record of {unknown}"}],
            "request": _request(template, unknown),
            "response": {"status": 404},
        }
    )
    return {
        "consumer": {"name": CONSUMER},
        "provider": {"name": participant},
        "interactions": interactions,
        "metadata": {"pactSpecification": {"version": "4.0"}},
    }


def _request(template: str, workflow_id: str) -> dict[str, Any]:
    path, _, query = template.partition("?")
    request: dict[str, Any] = {
        "method": "GET",
        "path": path.replace(PLACEHOLDER, quote(workflow_id, safe="")),
        "headers": {"Accept": ["application/json"]},
    }
    if query:
        request["query"] = parse_qs(query, keep_blank_values=True)
    return request


def write_pact(contract: Contract, directory: Path) -> Path:
    """Write the pact file into ``directory`` (made if missing); return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{CONSUMER}-{contract.participant}.json"
    target.write_text(json.dumps(pact(contract), indent=2) + "\n", encoding="utf-8")
    return target

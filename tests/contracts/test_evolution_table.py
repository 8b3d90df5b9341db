"""Schema changes judged one by one by the subset rule: breaking when the new schema
allows an answer the old reader (the aggregator, built for the old one) refuses."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from contracts._evolution import Coverage, compare
from contracts._schemas import SCHEMA_DIR

Schema = dict[str, Any]
PAYMENT: Schema = json.loads((SCHEMA_DIR / "payment.v1.json").read_text(encoding="utf-8"))
INVENTORY: Schema = json.loads((SCHEMA_DIR / "inventory.v1.json").read_text(encoding="utf-8"))


def changed(schema: Schema, name: str, value: Schema) -> Schema:
    """``schema`` with the field ``name`` replaced by ``value``: a base of its own."""
    copied = copy.deepcopy(schema)
    copied["properties"][name] = value
    return copied


NUMBER = changed(PAYMENT, "amount", {"type": "number", "minimum": 0})
NULLABLE = changed(PAYMENT, "currency", {"type": ["string", "null"], "maxLength": 5})
STEPS = changed(PAYMENT, "amount", {"type": "number", "multipleOf": 0.1})


def prop(schema: Schema, name: str) -> Schema:
    found: Schema = schema["properties"][name]
    return found


def set_(name: str, key: str, value: Any) -> Callable[[Schema], None]:
    return lambda schema: prop(schema, name).__setitem__(key, value)


def drop(name: str, key: str) -> Callable[[Schema], None]:
    return lambda schema: prop(schema, name).pop(key)


def replace(name: str, value: Schema) -> Callable[[Schema], None]:
    return lambda schema: schema["properties"].__setitem__(name, value)


def add_field(name: str, value: Schema, *, required: bool = False) -> Callable[[Schema], None]:
    def change(schema: Schema) -> None:
        schema["properties"][name] = value
        if required:
            schema["required"].append(name)

    return change


def optional(name: str) -> Callable[[Schema], None]:
    return lambda schema: schema["required"].remove(name)


def both(*changes: Callable[[Schema], None]) -> Callable[[Schema], None]:
    def change(schema: Schema) -> None:
        for one in changes:
            one(schema)

    return change


def item(key: str, value: Any) -> Callable[[Schema], None]:
    return lambda schema: schema["$defs"]["ReservedItem"]["properties"]["sku"].__setitem__(
        key, value
    )


STATES = prop(PAYMENT, "state")["enum"]
NULLABLE_METHOD = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
WITH_METHOD: Schema = {
    **PAYMENT,
    "properties": {**PAYMENT["properties"], "method": NULLABLE_METHOD},
}

# (name, base, change applied to a copy of it: (old, new) = (base, changed) or, with
# "reverse", (changed, base); expected kind; the path; a substring of the reason)
CASES: list[tuple[str, Schema, Callable[[Schema], object], bool, str, str, str]] = [
    # types
    (
        "type widened to null",
        PAYMENT,
        replace("amount", {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        False,
        "breaking",
        "amount",
        "refuses ['null']",
    ),
    (
        "string | null -> string",
        WITH_METHOD,
        replace("method", {"type": "string"}),
        False,
        "compatible",
        "method",
        "type narrowed",
    ),
    (
        "string -> string | null",
        WITH_METHOD,
        replace("method", {"type": "string"}),
        True,
        "breaking",
        "method",
        "refuses ['null']",
    ),
    (
        "type changed",
        PAYMENT,
        set_("amount", "type", "string"),
        False,
        "breaking",
        "amount",
        "type changed",
    ),
    (
        "integer -> number",
        PAYMENT,
        set_("amount", "type", "number"),
        False,
        "breaking",
        "amount",
        "refuses ['number']",
    ),
    (
        "number -> integer",
        PAYMENT,
        set_("amount", "type", "number"),
        True,
        "compatible",
        "amount",
        "type narrowed",
    ),
    (
        "type dropped: anything goes",
        PAYMENT,
        replace("amount", {}),
        False,
        "breaking",
        "amount",
        "refuses ['any']",
    ),
    # required
    (
        "field made optional",
        PAYMENT,
        optional("currency"),
        False,
        "breaking",
        "currency",
        "no longer required",
    ),
    (
        "field made required",
        PAYMENT,
        optional("currency"),
        True,
        "compatible",
        "currency",
        "field made required",
    ),
    (
        "required field added",
        PAYMENT,
        add_field("method", {"type": "string"}, required=True),
        False,
        "compatible",
        "method",
        "field added (required)",
    ),
    (
        "optional field added",
        PAYMENT,
        add_field("method", {"type": "string"}),
        False,
        "compatible",
        "method",
        "field added",
    ),
    (
        "required field removed",
        PAYMENT,
        lambda s: (s["properties"].pop("currency"), s["required"].remove("currency")),
        False,
        "breaking",
        "currency",
        "field removed: the old reader requires it",
    ),
    # enums
    (
        "state added",
        PAYMENT,
        set_("state", "enum", [*STATES, "chargeback"]),
        False,
        "breaking",
        "state",
        "unless your aggregator's rules cover it",
    ),
    (
        "state removed",
        PAYMENT,
        set_("state", "enum", STATES[:-1]),
        False,
        "compatible",
        "state",
        "enum value 'refunded' removed",
    ),
    (
        "enum dropped",
        PAYMENT,
        drop("state", "enum"),
        False,
        "breaking",
        "state",
        "no longer limited",
    ),
    (
        "enum added",
        PAYMENT,
        drop("state", "enum"),
        True,
        "compatible",
        "state",
        "now limited to the values",
    ),
    (
        "other enum widened",
        PAYMENT,
        set_("currency", "enum", ["EUR", "USD"]),
        False,
        "compatible",
        "currency",
        "now limited",
    ),
    (
        "value added to a non-state enum",
        INVENTORY,
        lambda s: s["$defs"]["ReservedItem"]["properties"]["sku"].__setitem__("enum", ["a", "b"]),
        False,
        "compatible",
        "items[].sku",
        "now limited",
    ),
    # pattern
    (
        "looser pattern",
        PAYMENT,
        set_("currency", "pattern", "^[A-Z]{3,4}$"),
        False,
        "breaking",
        "currency",
        "pattern changed",
    ),
    (
        "pattern removed",
        PAYMENT,
        drop("currency", "pattern"),
        False,
        "breaking",
        "currency",
        "pattern '^[A-Z]{3}$' removed",
    ),
    (
        "pattern added",
        PAYMENT,
        drop("currency", "pattern"),
        True,
        "compatible",
        "currency",
        "pattern '^[A-Z]{3}$' added",
    ),
    # lengths
    (
        "maxLength raised",
        PAYMENT,
        set_("workflow_id", "maxLength", 256),
        False,
        "breaking",
        "workflow_id",
        "maxLength raised from 128 to 256",
    ),
    (
        "maxLength lowered",
        PAYMENT,
        set_("workflow_id", "maxLength", 64),
        False,
        "compatible",
        "workflow_id",
        "maxLength lowered",
    ),
    (
        "maxLength removed",
        PAYMENT,
        drop("workflow_id", "maxLength"),
        False,
        "breaking",
        "workflow_id",
        "maxLength 128 removed",
    ),
    (
        "minLength lowered",
        PAYMENT,
        set_("workflow_id", "minLength", 0),
        False,
        "breaking",
        "workflow_id",
        "minLength lowered",
    ),
    (
        "minLength raised",
        PAYMENT,
        set_("workflow_id", "minLength", 2),
        False,
        "compatible",
        "workflow_id",
        "minLength raised",
    ),
    # numbers
    (
        "minimum dropped on amount",
        PAYMENT,
        drop("amount", "minimum"),
        False,
        "breaking",
        "amount",
        "minimum 0 removed",
    ),
    (
        "minimum dropped on version",
        PAYMENT,
        drop("version", "minimum"),
        False,
        "breaking",
        "version",
        "minimum 0 removed",
    ),
    (
        "minimum raised",
        PAYMENT,
        set_("amount", "minimum", 1),
        False,
        "compatible",
        "amount",
        "raised",
    ),
    (
        "minimum made exclusive",
        PAYMENT,
        both(drop("amount", "minimum"), set_("amount", "exclusiveMinimum", 0)),
        False,
        "compatible",
        "amount",
        "exclusiveMinimum 0",
    ),
    (
        "exclusive minimum made inclusive",
        PAYMENT,
        both(drop("amount", "minimum"), set_("amount", "exclusiveMinimum", 0)),
        True,
        "breaking",
        "amount",
        "refuses more",
    ),
    (
        "maximum added",
        PAYMENT,
        set_("amount", "maximum", 10**9),
        False,
        "compatible",
        "amount",
        "maximum 1e+09 added",
    ),
    (
        "maximum raised",
        PAYMENT,
        both(set_("amount", "maximum", 10)),
        True,
        "breaking",
        "amount",
        "maximum 10 removed",
    ),
    (
        "exclusiveMaximum raised",
        PAYMENT,
        set_("amount", "exclusiveMaximum", 100),
        True,
        "breaking",
        "amount",
        "exclusiveMaximum 100 removed",
    ),
    (
        "multipleOf loosened",
        PAYMENT,
        set_("amount", "multipleOf", 10),
        True,
        "breaking",
        "amount",
        "multipleOf changed from 10 to None",
    ),
    # format
    (
        "format removed",
        PAYMENT,
        drop("updated_at", "format"),
        False,
        "breaking",
        "updated_at",
        "format 'date-time' removed",
    ),
    (
        "format added",
        PAYMENT,
        drop("updated_at", "format"),
        True,
        "compatible",
        "updated_at",
        "format 'date-time' added",
    ),
    (
        "format changed",
        PAYMENT,
        set_("updated_at", "format", "date"),
        False,
        "breaking",
        "updated_at",
        "format changed",
    ),
    # additionalProperties
    (
        "closed object opened",
        PAYMENT,
        lambda s: s.__setitem__("additionalProperties", False),
        True,
        "breaking",
        "*",
        "unknown fields now allowed",
    ),
    (
        "open object closed",
        PAYMENT,
        lambda s: s.__setitem__("additionalProperties", False),
        False,
        "compatible",
        "*",
        "no longer allowed",
    ),
    (
        "field added to a closed object",
        {**PAYMENT, "additionalProperties": False},
        add_field("method", {"type": "string"}),
        False,
        "breaking",
        "method",
        "refuses unknown fields",
    ),
    (
        "optional field removed from an open object",
        WITH_METHOD,
        lambda s: s["properties"].pop("method"),
        False,
        "breaking",
        "method",
        "lets it hold anything",
    ),
    # nested objects and arrays, through $ref
    (
        "nested maxLength raised",
        INVENTORY,
        item("maxLength", 100),
        False,
        "breaking",
        "items[].sku",
        "maxLength raised",
    ),
    (
        "nested field made optional",
        INVENTORY,
        lambda s: s["$defs"]["ReservedItem"]["required"].remove("quantity"),
        False,
        "breaking",
        "items[].quantity",
        "no longer required",
    ),
    (
        "nested minimum removed",
        INVENTORY,
        lambda s: s["$defs"]["ReservedItem"]["properties"]["quantity"].pop("minimum"),
        False,
        "breaking",
        "items[].quantity",
        "minimum 1 removed",
    ),
    (
        "items unchecked",
        INVENTORY,
        lambda s: s["properties"]["items"].pop("items"),
        False,
        "breaking",
        "items[]",
        "items no longer checked",
    ),
    (
        "number to integer, its minimum dropped",
        NUMBER,
        replace("amount", {"type": "integer"}),
        False,
        "breaking",
        "amount",
        "minimum 0 removed",
    ),
    (
        "one variant of two types, its maxLength raised",
        NULLABLE,
        set_("currency", "maxLength", 10),
        False,
        "breaking",
        "currency",
        "maxLength raised from 5 to 10",
    ),
    (
        "multipleOf 0.1 to 0.3",
        STEPS,
        set_("amount", "multipleOf", 0.3),
        False,
        "compatible",
        "amount",
        "multipleOf changed from 0.1 to 0.3",
    ),
    (
        "a keyword not judged",
        INVENTORY,
        lambda s: s["properties"]["items"].__setitem__("uniqueItems", False),
        True,
        "breaking",
        "items",
        "not judged: uniqueItems changed",
    ),
    (
        "the old one wrapped in allOf",
        PAYMENT,
        replace("amount", {"allOf": [{"type": "string"}]}),
        True,
        "breaking",
        "amount",
        "not judged: allOf changed",
    ),
    (
        "two variants of one type",
        PAYMENT,
        replace(
            "amount",
            {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "integer", "minimum": 5}]},
        ),
        False,
        "breaking",
        "amount",
        "not judged: several variants allow a integer",
    ),
    (
        "maxItems added",
        INVENTORY,
        lambda s: s["properties"]["items"].__setitem__("maxItems", 50),
        False,
        "compatible",
        "items",
        "maxItems 50 added",
    ),
]


@pytest.mark.parametrize(
    ("base", "change", "reverse", "kind", "path", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_change_is_judged_by_the_subset_rule(
    base: Schema,
    change: Callable[[Schema], object],
    reverse: bool,
    kind: str,
    path: str,
    reason: str,
) -> None:
    changed = copy.deepcopy(base)
    change(changed)
    old, new = (changed, base) if reverse else (base, changed)
    changes = compare(old, new)
    found = [c for c in changes if c.path == path and reason in c.what]
    assert len(found) == 1, [str(c) for c in changes]  # said once
    assert found[0].kind == kind, str(found[0])
    if kind == "compatible":  # and nothing else called breaking
        assert [str(c) for c in changes if c.kind == "breaking"] == []


def test_a_recursive_schema_is_compared_once_per_level() -> None:
    def tree(max_length: int) -> Schema:
        node = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": max_length},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            },
        }
        return {"$defs": {"Node": node}, "$ref": "#/$defs/Node"}

    assert [str(change) for change in compare(tree(10), tree(20))] == [
        "breaking   name: maxLength raised from 10 to 20: the old reader refuses more"
    ]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("states", "kind", "reason"),
    [
        (frozenset({*STATES, "chargeback"}), "compatible", "covered by the rules of workflow w"),
        (
            frozenset(STATES),
            "breaking",
            "state 'chargeback' of payment is not covered by the rules of workflow w: "
            "add a status rule for it",
        ),
    ],
)
def test_an_added_state_is_judged_by_the_rules_coverage(
    states: frozenset[str], kind: str, reason: str
) -> None:
    new = copy.deepcopy(PAYMENT)
    prop(new, "state")["enum"].append("chargeback")
    (change,) = compare(PAYMENT, new, coverage=Coverage("w", "payment", states))
    assert (change.kind, change.path) == (kind, "state") and reason in change.what

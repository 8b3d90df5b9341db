"""Comparing two versions of a participant's JSON Schema: breaking or compatible?

The schemas describe answers the aggregator reads, so a change is breaking when
an answer valid under the new schema may not be one the old readers accept, or
may lack what they rely on:

- breaking: a field removed, a field made required or no longer required, a type
  changed (narrowed or widened), an enum value removed;
- compatible: a field added (readers ignore unknown fields), an enum value added
  (the aggregator's rules must then cover it: its tests fail until they do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Schema = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    kind: Literal["breaking", "compatible"]
    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.kind:<10} {self.path or '(root)'}: {self.what}"


def _resolve(schema: Schema, root: Schema) -> Schema:
    while "$ref" in schema:
        reference = schema["$ref"]
        if not reference.startswith("#/"):
            raise ValueError(f"only local $ref are supported, not {reference!r}")
        target: Any = root
        for step in reference[2:].split("/"):
            target = target[step]
        schema = target
    return schema


def _variants(schema: Schema, root: Schema) -> list[Schema]:
    schema = _resolve(schema, root)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [v for option in schema[key] for v in _variants(option, root)]
    return [schema]


def _types(schema: Schema, root: Schema) -> set[str]:
    found: set[str] = set()
    for variant in _variants(schema, root):
        kind = variant.get("type")
        if isinstance(kind, list):
            found.update(kind)
        elif isinstance(kind, str):
            found.add(kind)
        elif "enum" in variant or "const" in variant:
            values = variant.get("enum", [variant.get("const")])
            found.update(_json_type(value) for value in values)
        else:
            found.add("any")
    return found


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "string"


def _enum(schema: Schema, root: Schema) -> set[Any] | None:
    values: set[Any] = set()
    for variant in _variants(schema, root):
        if "enum" in variant:
            values.update(variant["enum"])
        elif "const" in variant:
            values.add(variant["const"])
        elif variant.get("type") != "null":
            return None  # some variant accepts more than a list of values
    return values or None


def _first(schema: Schema, root: Schema, key: str) -> Schema | None:
    for variant in _variants(schema, root):
        if key in variant:
            return variant
    return None


def compare(old: Schema, new: Schema) -> list[Change]:
    """Every change between two schemas of the same model, deepest paths included."""
    changes: list[Change] = []
    _compare(old, old, new, new, "", changes)
    return changes


def _compare(
    old: Schema, old_root: Schema, new: Schema, new_root: Schema, path: str, out: list[Change]
) -> None:
    old_types, new_types = _types(old, old_root), _types(new, new_root)
    if old_types != new_types and "any" not in old_types:
        removed, added = sorted(old_types - new_types), sorted(new_types - old_types)
        detail = "narrowed" if not added else "widened" if not removed else "changed"
        out.append(
            Change(
                "breaking", path, f"type {detail} from {sorted(old_types)} to {sorted(new_types)}"
            )
        )
    old_enum, new_enum = _enum(old, old_root), _enum(new, new_root)
    if old_enum is not None and new_enum is not None:
        for value in sorted(old_enum - new_enum, key=str):
            out.append(Change("breaking", path, f"enum value {value!r} removed"))
        for value in sorted(new_enum - old_enum, key=str):
            out.append(Change("compatible", path, f"enum value {value!r} added"))
    elif old_enum is not None and new_enum is None:
        out.append(Change("breaking", path, "enum no longer limited to a list of values"))
    elif old_enum is None and new_enum is not None:
        out.append(
            Change("breaking", path, f"now limited to the values {sorted(new_enum, key=str)}")
        )

    old_object, new_object = (
        _first(old, old_root, "properties"),
        _first(new, new_root, "properties"),
    )
    if old_object is not None and new_object is not None:
        old_props, new_props = old_object["properties"], new_object["properties"]
        old_required = set(old_object.get("required", []))
        new_required = set(new_object.get("required", []))
        for name in sorted(old_props):
            where = f"{path}.{name}" if path else name
            if name not in new_props:
                out.append(Change("breaking", where, "field removed"))
                continue
            if name in new_required and name not in old_required:
                out.append(Change("breaking", where, "field made required"))
            if name in old_required and name not in new_required:
                out.append(Change("breaking", where, "field no longer required"))
            _compare(old_props[name], old_root, new_props[name], new_root, where, out)
        for name in sorted(set(new_props) - set(old_props)):
            where = f"{path}.{name}" if path else name
            required = " (required)" if name in new_required else ""
            kind: Literal["breaking", "compatible"] = "breaking" if required else "compatible"
            out.append(Change(kind, where, f"field added{required}"))

    old_items, new_items = _first(old, old_root, "items"), _first(new, new_root, "items")
    if old_items is not None and new_items is not None:
        _compare(old_items["items"], old_root, new_items["items"], new_root, f"{path}[]", out)

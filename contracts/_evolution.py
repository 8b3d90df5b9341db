"""Comparing two versions of a participant's JSON Schema: breaking or compatible?

The schemas describe answers the aggregator reads, and the reader is built for
the OLD schema. So the rule is the subset rule:

- breaking: some answer valid under the new schema is refused or misread by a
  reader built for the old one (the new schema allows something the old does not);
- compatible: every answer the new schema allows, the old reader accepts.

By that rule a field removed that the old schema requires, a field no longer
required, a type widened (``integer`` -> ``integer | null``), an enum value added,
a constraint dropped or loosened (``pattern`` changed or removed, ``minLength`` /
``minimum`` lowered, ``maxLength`` / ``maximum`` raised, ``format`` removed) and
unknown fields allowed where the old schema forbade them are breaking; a field
added (an open object ignores it), a field made required, a type narrowed
(``string | null`` -> ``string``), an enum value removed and a constraint added or
tightened are compatible.

An added state is the one case the aggregator can absorb: its workflow rules
decide. Pass ``coverage`` (the states its rules cover) and a covered state is
compatible; without it an added state is breaking unless the rules cover it,
which ``status-aggregator diff --config aggregator.toml`` checks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Schema = dict[str, Any]
Kind = Literal["breaking", "compatible"]

# Where the rules check lives: contracts/ cannot import the aggregator, and the
# kit's light install does not carry it.
RULES_COMMAND = (
    "status-aggregator diff OLD NEW --config aggregator.toml --participant NAME,"
    " where the aggregator is installed"
)

# What the comparison judges; any other keyword that changes is reported breaking,
# "not judged": the old reader may refuse what it now allows.
_JUDGED = frozenset(
    {
        "type", "enum", "const", "properties", "required", "additionalProperties", "items",
        "anyOf", "oneOf", "$ref", "$defs", "definitions", "title", "description", "default",
        "examples", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
    }
)  # fmt: skip
_LOWER = (("minimum", "exclusiveMinimum"), ("minLength", None), ("minItems", None))
_UPPER = (("maximum", "exclusiveMaximum"), ("maxLength", None), ("maxItems", None))


@dataclass(frozen=True, slots=True)
class Change:
    kind: Kind
    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.kind:<10} {self.path or '(root)'}: {self.what}"


@dataclass(frozen=True, slots=True)
class Coverage:
    """The states of one participant that a workflow's status rules cover."""

    workflow: str
    participant: str
    states: frozenset[str]


def _resolve(schema: Schema, root: Schema) -> Schema:
    seen: set[str] = set()
    while "$ref" in schema:
        reference = schema["$ref"]
        if not reference.startswith("#/"):
            raise ValueError(f"only local $ref are supported, not {reference!r}")
        if reference in seen:
            raise ValueError(f"$ref {reference!r} refers to itself")
        seen.add(reference)
        target: Any = root
        for step in reference[2:].split("/"):
            target = target[step.replace("~1", "/").replace("~0", "~")]
        schema = target
    return schema


def _variants(schema: Schema | bool, root: Schema) -> list[Schema]:
    if schema is True:
        return [{}]
    if schema is False:
        return []
    schema = _resolve(schema, root)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [v for option in schema[key] for v in _variants(option, root)]
    return [schema]


def _variant_types(variant: Schema) -> set[str]:
    kind = variant.get("type")
    if isinstance(kind, list):
        return set(kind)
    if isinstance(kind, str):
        return {kind}
    if "enum" in variant or "const" in variant:
        return {_json_type(value) for value in variant.get("enum", [variant.get("const")])}
    if "properties" in variant:
        return {"object"}
    if "items" in variant:
        return {"array"}
    return {"any"}


def _types(schema: Schema, root: Schema) -> set[str]:
    return {kind for variant in _variants(schema, root) for kind in _variant_types(variant)}


def _multiple(now: float, was: float) -> bool:
    """Whether every multiple of ``now`` is one of ``was`` (0.3 of 0.1: yes).

    >>> _multiple(0.3, 0.1), _multiple(0.15, 0.1), _multiple(4, 2)
    (True, False, True)
    """
    ratio = now / was
    return abs(ratio - round(ratio)) < 1e-9 and round(ratio) >= 1


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


def _accepts(types: set[str], kind: str) -> bool:
    return "any" in types or kind in types or (kind == "integer" and "number" in types)


def _enum(schema: Schema, root: Schema) -> set[Any] | None:
    """The values allowed, or None when some variant allows more than a list (null aside)."""
    values: set[Any] = set()
    for variant in _variants(schema, root):
        if "enum" in variant:
            values.update(variant["enum"])
        elif "const" in variant:
            values.add(variant["const"])
        elif variant.get("type") != "null":
            return None
    return values or None


def _for_type(schema: Schema, root: Schema, kind: str) -> list[Schema]:
    """The variants allowing ``kind``."""
    return [v for v in _variants(schema, root) if _accepts(_variant_types(v), kind)]


class SchemaFileError(ValueError):
    """A schema file that cannot be read or compared; the message says which and why."""


def compare_files(old: Path, new: Path, *, coverage: Coverage | None = None) -> list[Change]:
    """``compare`` on two JSON Schema files; SchemaFileError names the file at fault."""
    schemas = []
    for path in (old, new):
        try:
            schemas.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise SchemaFileError(f"{path}: cannot read a JSON Schema: {exc}") from None
    try:
        return compare(schemas[0], schemas[1], coverage=coverage)
    except (ValueError, KeyError, TypeError) as exc:
        raise SchemaFileError(f"cannot compare: {exc}") from None


def report(changes: Sequence[Change]) -> tuple[str, int]:
    """The lines ``diff`` prints and its exit code: 1 when any change is breaking."""
    breaking = sum(change.kind == "breaking" for change in changes)
    lines = [*map(str, changes), f"{breaking} breaking, {len(changes) - breaking} compatible"]
    return "\n".join(lines), 1 if breaking else 0


def compare(old: Schema, new: Schema, *, coverage: Coverage | None = None) -> list[Change]:
    """Every change between two schemas of the same model, deepest paths included,
    each judged by whether the old reader accepts all the new schema allows."""
    changes: list[Change] = []
    _Comparison(old, new, coverage, changes).node(old, new, "")
    return changes


@dataclass(slots=True)
class _Comparison:
    old_root: Schema
    new_root: Schema
    coverage: Coverage | None
    out: list[Change]
    # The (old, new) pairs being compared further up: a recursive schema ($ref to
    # itself, as a tree's children) is compared once, not forever.
    open_pairs: set[tuple[int, int]] = field(default_factory=set)

    def add(self, kind: Kind, path: str, what: str) -> None:
        self.out.append(Change(kind, path, what))

    def node(self, old: Schema, new: Schema, path: str) -> None:
        pair = (id(_resolve(old, self.old_root)), id(_resolve(new, self.new_root)))
        if pair in self.open_pairs:
            return
        self.open_pairs.add(pair)
        try:
            self.judge(old, new, path)
        finally:
            self.open_pairs.discard(pair)

    def judge(self, old: Schema, new: Schema, path: str) -> None:
        old_types, new_types = _types(old, self.old_root), _types(new, self.new_root)
        if old_types != new_types and "any" not in old_types:
            extra = sorted(kind for kind in new_types if not _accepts(old_types, kind))
            gone = sorted(kind for kind in old_types if not _accepts(new_types, kind))
            span = f"from {sorted(old_types)} to {sorted(new_types)}"
            if extra:
                detail = "widened" if not gone else "changed"
                self.add("breaking", path, f"type {detail} {span}: the old reader refuses {extra}")
            elif gone:
                self.add("compatible", path, f"type narrowed {span}")
        self.enum(old, new, path)
        compared: set[tuple[int, int]] = set()
        # Each kind of value the new schema allows and the old reader may take (an
        # integer where a number was), against the old variant that takes it.
        for kind in sorted(kind for kind in new_types if _accepts(old_types, kind)):
            olds = _for_type(old, self.old_root, kind)
            news = _for_type(new, self.new_root, kind)
            if len(olds) != 1 or len(news) != 1:
                if olds != news:
                    self.add(
                        "breaking",
                        path,
                        f"not judged: several variants allow a {kind}; compare them by hand",
                    )
                continue
            old_variant, new_variant = olds[0], news[0]
            if (id(old_variant), id(new_variant)) in compared:
                continue  # one variant of several types ("string" or "null"): judged once
            compared.add((id(old_variant), id(new_variant)))
            self.constraints(old_variant, new_variant, path)
            self.unjudged(old_variant, new_variant, path)
            if kind == "object":
                self.object(old_variant, new_variant, path)
            elif kind == "array":
                self.array(old_variant, new_variant, path)

    def unjudged(self, old: Schema, new: Schema, path: str) -> None:
        for key in sorted((old.keys() | new.keys()) - _JUDGED):
            if old.get(key) != new.get(key):
                self.add(
                    "breaking",
                    path,
                    f"not judged: {key} changed; the old reader may refuse what it now allows",
                )

    def enum(self, old: Schema, new: Schema, path: str) -> None:
        old_enum, new_enum = _enum(old, self.old_root), _enum(new, self.new_root)
        if old_enum is None:
            if new_enum is not None:
                self.add(
                    "compatible", path, f"now limited to the values {sorted(new_enum, key=str)}"
                )
            return
        if new_enum is None:
            self.add("breaking", path, "enum no longer limited to a list of values")
            return
        for value in sorted(old_enum - new_enum, key=str):
            self.add("compatible", path, f"enum value {value!r} removed")
        for value in sorted(new_enum - old_enum, key=str):
            self.added_value(value, path)

    def added_value(self, value: Any, path: str) -> None:
        if path != "state":
            self.add("breaking", path, f"enum value {value!r} added: the old reader refuses it")
            return
        coverage = self.coverage
        if coverage is None:
            self.add(
                "breaking",
                path,
                f"state {value!r} added: breaking unless your aggregator's rules cover it "
                f"(check with: {RULES_COMMAND})",
            )
        elif value in coverage.states:
            self.add(
                "compatible",
                path,
                f"state {value!r} added, covered by the rules of workflow {coverage.workflow}",
            )
        else:
            self.add(
                "breaking",
                path,
                f"state {value!r} of {coverage.participant} is not covered by the rules of "
                f"workflow {coverage.workflow}: add a status rule for it",
            )

    def constraints(self, old: Schema, new: Schema, path: str) -> None:
        for inclusive, exclusive in _LOWER:
            self.bound(old, new, path, inclusive, exclusive, lower=True)
        for inclusive, exclusive in _UPPER:
            self.bound(old, new, path, inclusive, exclusive, lower=False)
        for key in ("pattern", "format"):
            was, now = old.get(key), new.get(key)
            if was == now:
                continue
            if was is None:
                self.add("compatible", path, f"{key} {now!r} added")
            elif now is None:
                self.add("breaking", path, f"{key} {was!r} removed: the old reader refuses more")
            else:
                self.add(
                    "breaking",
                    path,
                    f"{key} changed from {was!r} to {now!r}: the old reader refuses "
                    "what only the new one allows",
                )
        was, now = old.get("multipleOf"), new.get("multipleOf")
        if was is not None and was != now:
            loosened = now is None or not _multiple(now, was)
            self.add(
                "breaking" if loosened else "compatible",
                path,
                f"multipleOf changed from {was} to {now}",
            )
        elif was is None and now is not None:
            self.add("compatible", path, f"multipleOf {now} added")

    def bound(
        self,
        old: Schema,
        new: Schema,
        path: str,
        inclusive: str,
        exclusive: str | None,
        *,
        lower: bool,
    ) -> None:
        was, now = (
            _bound(old, inclusive, exclusive, lower),
            _bound(new, inclusive, exclusive, lower),
        )
        if was == now:
            return
        name = inclusive if exclusive is None else f"{inclusive}/{exclusive}"
        if was is None:
            self.add("compatible", path, f"{_show(now, inclusive, exclusive)} added")
            return
        old_text = _show(was, inclusive, exclusive)
        if now is None:
            self.add("breaking", path, f"{old_text} removed: the old reader refuses more")
            return
        # (value, exclusive): for a lower bound, a larger value or an exclusive one is stricter
        stricter = now > was if lower else (now[0], not now[1]) < (was[0], not was[1])
        moved = "raised" if now[0] > was[0] else "lowered" if now[0] < was[0] else "changed"
        if exclusive is None:  # one keyword: its values say it all
            span = f"{name} {moved} from {was[0]:g} to {now[0]:g}"
        else:
            span = f"{name} {moved} from {old_text} to {_show(now, inclusive, exclusive)}"
        if stricter:
            self.add("compatible", path, span)
        else:
            self.add("breaking", path, f"{span}: the old reader refuses more")

    def object(self, old: Schema, new: Schema, path: str) -> None:
        old_props: Schema = old.get("properties", {})
        new_props: Schema = new.get("properties", {})
        old_required = set(old.get("required", []))
        new_required = set(new.get("required", []))
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        for name in sorted(old_props):
            where = f"{path}.{name}" if path else name
            if name not in new_props:
                if name in old_required:
                    self.add("breaking", where, "field removed: the old reader requires it")
                elif new_extra is not False:
                    self.add(
                        "breaking",
                        where,
                        "field removed: the new schema lets it hold anything, "
                        "the old reader checks it",
                    )
                else:
                    self.add("compatible", where, "field removed (it was optional)")
                continue
            if name in old_required and name not in new_required:
                self.add("breaking", where, "field no longer required: the old reader requires it")
            if name in new_required and name not in old_required:
                self.add("compatible", where, "field made required")
            self.node(old_props[name], new_props[name], where)
        for name in sorted(set(new_props) - set(old_props)):
            where = f"{path}.{name}" if path else name
            required = " (required)" if name in new_required else ""
            if old_extra is False:
                self.add(
                    "breaking",
                    where,
                    f"field added{required}: the old schema refuses unknown fields "
                    "(additionalProperties false)",
                )
            elif isinstance(old_extra, dict):
                self.node(old_extra, new_props[name], where)
            else:
                self.add("compatible", where, f"field added{required}")
        self.additional(old_extra, new_extra, path)

    def additional(self, was: Any, now: Any, path: str) -> None:
        where = f"{path}.*" if path else "*"
        if was is False:
            if now is not False:
                self.add(
                    "breaking", where, "unknown fields now allowed: the old reader refuses them"
                )
        elif isinstance(was, dict):
            if isinstance(now, dict):
                self.node(was, now, where)
            elif now is not False:
                self.add(
                    "breaking",
                    where,
                    "additional fields no longer checked: the old reader checks them",
                )
            else:
                self.add("compatible", where, "unknown fields no longer allowed")
        elif now is False:
            self.add("compatible", where, "unknown fields no longer allowed")
        elif isinstance(now, dict):
            self.add("compatible", where, "additional fields now checked")

    def array(self, old: Schema, new: Schema, path: str) -> None:
        was, now = old.get("items"), new.get("items")
        if was is None or was is True:
            if now is not None and now is not True:
                self.add("compatible", f"{path}[]", "items now checked")
            return
        if now is None or now is True:
            self.add("breaking", f"{path}[]", "items no longer checked: the old reader checks them")
            return
        self.node(was, now, f"{path}[]")


def _bound(
    schema: Schema, inclusive: str, exclusive: str | None, lower: bool
) -> tuple[float, bool] | None:
    """The tightest bound of one side as ``(value, exclusive)``."""
    found: list[tuple[float, bool]] = []
    if isinstance(schema.get(inclusive), int | float):
        found.append((schema[inclusive], False))
    if exclusive is not None and isinstance(schema.get(exclusive), int | float):
        found.append((schema[exclusive], True))
    if not found:
        return None
    if lower:
        return max(found)
    return min(found, key=lambda bound: (bound[0], not bound[1]))


def _show(bound: tuple[float, bool] | None, inclusive: str, exclusive: str | None) -> str:
    if bound is None:
        return "none"
    return f"{exclusive if bound[1] and exclusive else inclusive} {bound[0]:g}"

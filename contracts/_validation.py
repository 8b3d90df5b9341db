"""Pydantic's validation errors as lines a person can act on: written once, for
the aggregator, the gateway, the configuration, the kit and the participants."""

from __future__ import annotations

import json
import re
from collections.abc import Collection

from pydantic import ValidationError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN = 60  # characters of a wrong value shown


def validation_problems(
    error: ValidationError,
    *,
    inputs: bool = False,
    secret_under: Collection[tuple[str, ...]] = (),
    whole: str = "body",
) -> list[str]:
    """One line per problem: ``where: message``, ``where`` the dotted path to the
    field (``whole`` for the whole document; nothing when empty); with ``inputs``,
    the value given, as JSON, or ``(missing)``. A key directly under a path in ``secret_under`` (a
    credential) is shown as ``<key>``; control characters in a key are escaped, so
    a line stays one line.

    >>> from pydantic import BaseModel
    >>> class Order(BaseModel):
    ...     amount: int
    ...     version: int
    >>> try:
    ...     Order.model_validate({"amount": "lots"})
    ... except ValidationError as exc:
    ...     for line in validation_problems(exc, inputs=True):
    ...         print(line)
    amount: Input should be a valid integer, unable to parse string as an integer (got "lots")
    version: Field required (missing)
    """
    lines = []
    for item in error.errors(include_url=False):
        steps = [str(step) for step in item["loc"]]
        for prefix in secret_under:
            if tuple(steps[: len(prefix)]) == prefix and len(steps) > len(prefix):
                steps[len(prefix)] = "<key>"
        where = _CONTROL.sub(lambda found: repr(found.group())[1:-1], ".".join(steps)) or whole
        message = item["msg"].removeprefix("Value error, ")
        line = f"{where}: {message}" if where else message
        if inputs:
            line += " (missing)" if item["type"] == "missing" else f" (got {_shown(item['input'])})"
        lines.append(line)
    return lines


def _shown(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."

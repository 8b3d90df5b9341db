"""Workflow id validation: checked before any URL is built, then used as one path segment."""

from __future__ import annotations

import re
from urllib.parse import quote

from ._errors import ConfigError, InvalidWorkflowId

DEFAULT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
# Checked before the pattern, so a configured pattern can never make a huge id expensive.
HARD_MAX_LENGTH = 1024
# Resolved away as path segments, whatever the pattern allows.
_DOT_SEGMENTS = frozenset({".", ".."})
_REMEMBERED = 4096  # allowed ids remembered, at most 4 MiB of them


class IdPolicy:
    """Validates workflow ids against an allow-list pattern (matched in full).

    >>> IdPolicy().check("order-42")
    """

    __slots__ = ("_allowed", "_fullmatch", "_pattern")

    def __init__(self, pattern: str = DEFAULT_ID_PATTERN) -> None:
        try:
            self._pattern = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"id_pattern: not a valid regular expression: {exc}") from None
        self._fullmatch = self._pattern.fullmatch
        self._allowed: set[str] = set()  # ids found allowed lately: the answer never changes

    def check(self, workflow_id: object) -> None:
        """Raise InvalidWorkflowId unless ``workflow_id`` is allowed."""
        if type(workflow_id) is str and workflow_id in self._allowed:
            return  # on every request's path: a set lookup costs a third of a match
        if (
            type(workflow_id) is str
            and 0 < len(workflow_id) <= HARD_MAX_LENGTH
            and self._fullmatch(workflow_id)
            and workflow_id not in _DOT_SEGMENTS
        ):
            if len(self._allowed) >= _REMEMBERED:
                self._allowed.clear()
            self._allowed.add(workflow_id)
            return
        if not isinstance(workflow_id, str):
            raise InvalidWorkflowId(
                f"workflow id must be a string, not {type(workflow_id).__name__}"
            )
        if not workflow_id or len(workflow_id) > HARD_MAX_LENGTH:
            raise InvalidWorkflowId(f"workflow id must be 1 to {HARD_MAX_LENGTH} characters long")
        if workflow_id in _DOT_SEGMENTS or self._pattern.fullmatch(workflow_id) is None:
            shown = workflow_id if len(workflow_id) <= 40 else workflow_id[:40] + "..."
            raise InvalidWorkflowId(
                f"workflow id {shown!r} is not allowed: it must match {self._pattern.pattern}"
            )


def url_segment(workflow_id: str) -> str:
    """An allowed id, percent-encoded as one URL path segment."""
    return quote(workflow_id, safe="")

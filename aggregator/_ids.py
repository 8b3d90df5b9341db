"""Workflow id validation: checked before any URL is built, then used as one path segment."""

from __future__ import annotations

import re
from urllib.parse import quote

from ._errors import ConfigError, InvalidWorkflowId

DEFAULT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
# Checked before the pattern, so a configured pattern can never make a huge id expensive.
HARD_MAX_LENGTH = 1024


class IdPolicy:
    """Validates workflow ids against an allow-list pattern (matched in full).

    >>> IdPolicy().segment("order-42")
    'order-42'
    """

    __slots__ = ("_pattern",)

    def __init__(self, pattern: str = DEFAULT_ID_PATTERN) -> None:
        try:
            self._pattern = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"id_pattern: not a valid regular expression: {exc}") from None

    def segment(self, workflow_id: object) -> str:
        """Return the id percent-encoded as one URL path segment, or raise InvalidWorkflowId."""
        if not isinstance(workflow_id, str):
            raise InvalidWorkflowId(
                f"workflow id must be a string, not {type(workflow_id).__name__}"
            )
        if not workflow_id or len(workflow_id) > HARD_MAX_LENGTH:
            raise InvalidWorkflowId(f"workflow id must be 1 to {HARD_MAX_LENGTH} characters long")
        # "." and ".." would be resolved away as path segments whatever the pattern allows.
        if workflow_id in (".", "..") or self._pattern.fullmatch(workflow_id) is None:
            shown = workflow_id if len(workflow_id) <= 40 else workflow_id[:40] + "..."
            raise InvalidWorkflowId(
                f"workflow id {shown!r} is not allowed: it must match {self._pattern.pattern}"
            )
        return quote(workflow_id, safe="")

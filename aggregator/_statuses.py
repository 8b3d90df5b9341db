"""What a participant's HTTP status code means: one table, read by every stage that asks.

The parser takes a part's outcome and error from it, the circuit breaker whether
the answer counts as a failure of the participant, and the retry whether the
same GET may be sent again at once. Pure: a code in, a ``Meaning`` out.

=========  ===========  ===================  =======  =====
status     outcome      error kind           breaker  retry
=========  ===========  ===================  =======  =====
200        ok           -                    -        -
404        not_found    -                    -        -
408, 425   unavailable  http_status          failure  yes
429        unavailable  http_status          failure  -
502, 504   unavailable  http_status          failure  yes
other 5xx  unavailable  http_status          failure  -
3xx        invalid      unexpected_response  -        -
other      invalid      unexpected_response  -        -
=========  ===========  ===================  =======  =====

408 and 425 ask the client to send the request again; 502 and 504 say a proxy in
front of the participant could not reach it. A retry is still bounded by the
retry budget and the deadline. 429 and 503 say "not now": they are not retried,
so an overloaded participant gets fewer calls, not more.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts import ErrorKind, Outcome


@dataclass(frozen=True, slots=True)
class Meaning:
    outcome: Outcome
    kind: ErrorKind | None  # None when the status is not an error
    detail: str
    breaker_failure: bool  # the participant looks unable to serve
    retryable: bool  # the same GET may be sent again at once


def _unavailable(code: int, *, retryable: bool) -> Meaning:
    return Meaning(Outcome.UNAVAILABLE, ErrorKind.HTTP_STATUS, f"HTTP {code}", True, retryable)


def _unexpected(code: int) -> Meaning:
    detail = f"redirect (HTTP {code}) not followed" if 300 <= code < 400 else f"HTTP {code}"
    return Meaning(Outcome.INVALID, ErrorKind.UNEXPECTED_RESPONSE, detail, False, False)


_RETRY_AT_ONCE = frozenset({408, 425, 502, 504})
_NOT_NOW = frozenset({408, 425, 429})

_TABLE: dict[int, Meaning] = {
    code: (
        _unavailable(code, retryable=code in _RETRY_AT_ONCE)
        if code >= 500 or code in _NOT_NOW
        else _unexpected(code)
    )
    for code in range(100, 600)
}
_TABLE[200] = Meaning(Outcome.OK, None, "", False, False)
_TABLE[404] = Meaning(Outcome.NOT_FOUND, None, "", False, False)


def meaning(status: int) -> Meaning:
    """The meaning of any status code; one outside 100-599 is an unexpected response."""
    found = _TABLE.get(status)
    return found if found is not None else _unexpected(status)

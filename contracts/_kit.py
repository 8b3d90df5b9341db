"""The contract verification kit: cases a participant must pass, and the runner.

A case sets up a workflow in a given state on the provider (through its state
hook or a Python callable), asks the query API for it exactly as the aggregator
does, and checks the answer against the contract: status code, content type,
a body valid against the model in strict mode (no coercion: ``"3"`` is not an
integer), the state asked for, the workflow id asked for. Beyond single answers,
cases measure what the aggregator also depends on: a ``version`` that moves
forward, and answers within its timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import quote

from pydantic import ValidationError

from ._http import HttpError, Reply, post_json, request
from ._media import content_encoding, is_json
from ._validation import validation_problems
from ._views import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_TIMEOUT_MS,
    PLACEHOLDER,
    QUERY_HEADERS,
    RFC3339,
    Contract,
    ParticipantView,
    view_of,
)

StateSetup = Callable[[str, str, str], Awaitable[None] | None]
"""``setup(participant, state, workflow_id)``: put the provider's record in that state."""

AGGREGATOR_HEADERS = {
    **QUERY_HEADERS,
    "User-Agent": "choreography-status-aggregator/0.1 (contract kit)",
}
TRACE_HEADERS = {
    "X-Request-ID": "contract-kit-request",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "X-Tenant-ID": "contract-kit-tenant",
}
REDIRECT = ": the aggregator never follows redirects, so answer at this URL itself"
SERVER_ERROR = ": the hook failed on your service's side; its log says why"
# What a hook's refusal most likely means, said with it.
HOOK_HINTS = {
    404: ": is --state-hook the hook's own URL? The kit POSTs JSON to exactly that URL",
    405: ": the hook must take POST, with the JSON body shown",
    409: ": the hook must accept an id it has set up before, in another state or the same"
    " (the kit sets some ids up twice: request-headers in the same state,"
    " version:increases in another)",
}
LATENCY_REQUESTS = 30
LATENCY_CONCURRENCY = 5


@dataclass(frozen=True, slots=True)
class Case:
    """One thing the provider must do."""

    name: str
    description: str
    expect: Literal["record", "not_found", "newer_version", "within_budget"]
    state: str | None = None  # the provider state to set up first
    id_stem: str = "contract"
    headers: dict[str, str] = field(default_factory=dict)
    later_state: str | None = None  # set up second, for the same workflow id
    slug: str = "none"  # what the workflow ids of this case hold of its state


@dataclass(frozen=True, slots=True)
class Result:
    case: Case
    workflow_id: str
    passed: bool
    reasons: tuple[str, ...]
    seconds: float
    url: str = ""  # the query URL the case asked


class KitError(Exception):
    """The verification cannot run: a mistake in how it was asked for."""


def cases_for(participant: str, states: Sequence[str] = ()) -> list[Case]:
    """Every case of a participant's contract, stateless ones first; ``states`` for
    a participant declared in configuration (its definition's list)."""
    try:
        states = view_of(participant, states).states()
    except ValueError as exc:
        raise KitError(str(exc)) from None
    cases = [
        Case(
            "not-found",
            "a workflow the provider never saw is HTTP 404",
            expect="not_found",
            id_stem="contract-unknown",
        )
    ]
    cases += [
        Case(f"state:{state}", f"a record in state {state!r} is served", "record", state)
        for state in states
    ]
    first = states[0]
    cases += [
        Case(
            "id:letters-digits",
            "an id of upper and lower case letters and digits",
            "record",
            first,
            id_stem="Contract-UPPER-lower-0123456789",
        ),
        Case(
            "id:punctuation",
            "an id with every allowed punctuation mark: . _ : - (':' arrives as %3A)",
            "record",
            first,
            id_stem="contract.dots_under:colons-dashes",
        ),
        Case(
            "request-headers",
            "the headers the aggregator sends (request id, traceparent, tenant) are tolerated",
            "record",
            first,
            headers=TRACE_HEADERS,
        ),
    ]
    if len(states) > 1:  # a record of one state never changes state
        cases.append(
            Case(
                "version:increases",
                f"set up in {first!r}, then in {states[1]!r}: the second answer has a higher"
                " version",
                "newer_version",
                first,
                id_stem="contract-version",
                later_state=states[1],
            )
        )
    cases += [
        Case(
            "latency:p99",
            "the 99th percentile of answer times is within the aggregator's timeout",
            "within_budget",
            first,
            id_stem="contract-latency",
        ),
    ]
    slugs = _slugs(states)
    return [case if case.state is None else replace(case, slug=slugs[case.state]) for case in cases]


def contract_of(participant: str, states: Sequence[str] = (), path: str | None = None) -> Contract:
    """The contract to verify; KitError when it cannot be known."""
    try:
        return Contract.of(participant, states=states, path=path)
    except ValueError as exc:
        raise KitError(str(exc)) from None


def _slugs(states: Sequence[str]) -> dict[str, str]:
    """What a workflow id holds of each state: the state itself in letters, digits
    and dashes (``out_of_stock`` -> ``out-of-stock``), so any id the aggregator
    allows; by its position when that is empty or two states would share one.

    >>> _slugs(["on hold", "a_b", "a-b", "!"])
    {'on hold': 'on-hold', 'a_b': 'state2', 'a-b': 'state3', '!': 'state4'}
    """
    plain = {state: re.sub(r"[^A-Za-z0-9]+", "-", state).strip("-")[:32] for state in states}
    taken = Counter(plain.values())
    return {
        state: slug if slug and taken[slug] == 1 else f"state{index}"
        for index, (state, slug) in enumerate(plain.items(), start=1)
    }


def _workflow_id(case: Case, nonce: str) -> str:
    return f"{case.id_stem}-{case.slug}-{nonce}"[:128]


def check_reply(
    reply: Reply,
    model: type[ParticipantView],
    case: Case,
    workflow_id: str,
    *,
    url: str = "",
    set_up_by: str = "",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    state: str | None = None,
) -> list[str]:
    """Everything wrong with a query reply, as readable reasons; empty if it keeps the contract.

    ``url`` is the URL asked, ``set_up_by`` what put the record in place (``"the
    state hook answered 201"``), ``state`` the state expected when it is not the
    case's own; all three only make the reasons say what to fix.
    """
    return _read_record(
        reply,
        model,
        state if state is not None else case.state,
        workflow_id,
        expect_missing=case.expect == "not_found",
        url=url,
        set_up_by=set_up_by,
        max_body_bytes=max_body_bytes,
    )[1]


def _read_record(
    reply: Reply,
    model: type[ParticipantView],
    state: str | None,
    workflow_id: str,
    *,
    expect_missing: bool = False,
    url: str = "",
    set_up_by: str = "",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> tuple[ParticipantView | None, list[str]]:
    asked = f" for GET {url}" if url else ""
    if expect_missing:
        if reply.status == 404:
            return None, []
        return None, [
            f"expected HTTP 404 for a workflow the provider never saw, got HTTP {reply.status}"
            + (REDIRECT if 300 <= reply.status < 400 else "")
        ]
    if 300 <= reply.status < 400:
        location = reply.headers.get("location")
        return None, [
            f"expected HTTP 200, got a redirect (HTTP {reply.status}) to {location or 'nowhere'!r}"
            f"{asked}: the aggregator never follows redirects, so answer at this URL itself"
        ]
    if reply.status == 404:
        if ":" in workflow_id:
            hint = (
                "the id's ':' arrives percent-encoded as %3A: decode the path segment"
                f" before you look the id up (unless, as other cases may show,"
                f" {set_up_by or 'the state was set up'} but the record is not served)"
            )
        else:
            hint = f"{set_up_by or 'the state was set up'} but the record is not served"
        return None, [f"expected HTTP 200, got HTTP 404{asked}: {hint}"]
    if reply.status != 200:
        return None, [f"expected HTTP 200, got HTTP {reply.status}{asked}"]
    if len(reply.body) > max_body_bytes:  # read up to the cap only, as the aggregator does
        return None, [
            f"body is over {max_body_bytes} bytes, the aggregator's max_body_bytes:"
            " it refuses the answer (--max-body-bytes to match your deployment)"
        ]
    reasons = []
    encoding = content_encoding(reply.headers)
    if encoding is not None:
        reasons.append(f"content-encoding {encoding!r}: the aggregator asks for identity")
    content_type = reply.headers.get("content-type", "")
    if not content_type:
        reasons.append("no Content-Type header: send application/json")
    elif not is_json(content_type):
        reasons.append(f"content type {content_type!r} is not application/json")
    if encoding is not None:
        return None, reasons  # whatever it holds, the aggregator would not read it
    try:
        document = json.loads(reply.body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to read
        shown = reply.body[:60].decode("utf-8", "replace")
        return None, [*reasons, f"body is not JSON: {shown!r}"]
    body = reply.body
    if isinstance(document, dict) and "updated_at" in document:
        updated_at = document["updated_at"]
        if not (isinstance(updated_at, str) and RFC3339.fullmatch(updated_at)):
            reasons.append(
                "updated_at: must be an RFC 3339 date-time string with an offset,"
                f' such as "2026-01-01T10:00:00Z" (got {json.dumps(updated_at)[:60]})'
            )
            document = {k: v for k, v in document.items() if k != "updated_at"}
            document["updated_at"] = "1970-01-01T00:00:00Z"  # checked: let the rest be judged
            body = json.dumps(document).encode()
    try:
        view = model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        return None, [*reasons, *validation_problems(exc, inputs=True)]
    if view.state != state:
        reasons.append(f"state: expected {state!r}, got {view.state!r}")
    if view.workflow_id != workflow_id:
        reasons.append(f"workflow_id: expected {workflow_id!r}, got {view.workflow_id!r}")
    return view, reasons


def p99(seconds: list[float]) -> float:
    """The 99th percentile, nearest rank: of 30 samples, the slowest.

    >>> p99([0.1] * 99 + [2.0])
    0.1
    >>> p99([0.1] * 29 + [2.0])
    2.0
    """
    ordered = sorted(seconds)
    return ordered[max(math.ceil(0.99 * len(ordered)) - 1, 0)]


@dataclass
class Verifier:
    """Runs a participant's cases against a provider at ``base_url``.

    Provider states come from ``state_hook`` (a URL the kit POSTs
    ``{"participant", "state", "workflow_id"}`` to) or ``state_setup`` (a
    callable, sync or async). Without either, ``stateless_only`` must be set.
    ``budget_ms`` and ``max_body_bytes`` are the aggregator's ``timeout_ms``
    and ``max_body_bytes`` for this participant.

    >>> Verifier("payment", "http://127.0.0.1:8101", stateless_only=True).url_for("a:b")
    'http://127.0.0.1:8101/payments/a%3Ab'
    """

    participant: str
    base_url: str
    state_hook: str | None = None
    state_setup: StateSetup | None = None
    path: str | None = None
    states: Sequence[str] = ()  # a declared participant's, from its workflow definition
    timeout: float = 5.0
    stateless_only: bool = False
    budget_ms: int = DEFAULT_TIMEOUT_MS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    latency_requests: int = LATENCY_REQUESTS
    latency_concurrency: int = LATENCY_CONCURRENCY
    nonce: str = field(default_factory=lambda: secrets.token_hex(4))

    def __post_init__(self) -> None:
        contract = contract_of(self.participant, self.states, self.path)
        self.model = contract.model
        self.path = contract.path
        if self.state_hook and self.state_setup:
            raise KitError("give a state hook URL or a state setup callable, not both")
        if not (self.state_hook or self.state_setup or self.stateless_only):
            raise KitError(
                "provider states need a state hook URL or a setup callable "
                "(or ask for the stateless cases only)"
            )
        if self.budget_ms < 1 or self.max_body_bytes < 1:
            raise KitError("the budget and the body cap must be positive")
        if not 0 < self.timeout < math.inf:
            raise KitError(f"the timeout must be a positive number of seconds, not {self.timeout}")
        if not self.base_url.startswith(("http://", "https://")):
            raise KitError(f"base URL {self.base_url!r} must start with http:// or https://")
        if self.latency_requests < 1 or self.latency_concurrency < 1:
            raise KitError("latency requests and concurrency must be positive")

    def cases(self) -> list[Case]:
        every = cases_for(self.participant, self.states)
        return [c for c in every if c.state is None] if self.stateless_only else every

    def url_for(self, workflow_id: str) -> str:
        assert self.path is not None
        return self.base_url.rstrip("/") + self.path.replace(
            PLACEHOLDER, quote(workflow_id, safe="")
        )

    async def _set_up(self, state: str, workflow_id: str) -> tuple[str | None, str]:
        """Put the record in ``state``: a problem (or None), and what answered."""
        if self.state_setup is not None:
            try:
                outcome = self.state_setup(self.participant, state, workflow_id)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:
                return f"state setup failed: {type(exc).__name__}: {exc}", ""
            return None, "the state setup callable returned"
        assert self.state_hook is not None
        payload = {"participant": self.participant, "state": state, "workflow_id": workflow_id}
        try:
            reply = await asyncio.to_thread(
                post_json, self.state_hook, payload, timeout=self.timeout
            )
        except HttpError as exc:
            return f"state hook {self.state_hook} unreachable: {exc}", ""
        if not 200 <= reply.status < 300:
            hint = HOOK_HINTS.get(reply.status, SERVER_ERROR if reply.status >= 500 else "")
            return f"state hook answered HTTP {reply.status} for {payload}{hint}", ""
        return None, f"the state hook answered {reply.status}"

    async def _get(
        self, url: str, headers: dict[str, str] | None = None, *, seconds: float | None = None
    ) -> Reply:
        return await asyncio.to_thread(
            request,
            "GET",
            url,
            headers={**AGGREGATOR_HEADERS, **(headers or {})},
            timeout=seconds or self.timeout,
            max_body=self.max_body_bytes,
        )

    async def _read(
        self, case: Case, state: str, workflow_id: str
    ) -> tuple[ParticipantView | None, list[str]]:
        """Set the record up in ``state``, then ask for it as the aggregator does."""
        problem, set_up_by = await self._set_up(state, workflow_id)
        if problem is not None:
            return None, [problem]
        url = self.url_for(workflow_id)
        try:
            reply = await self._get(url, case.headers)
        except HttpError as exc:
            return None, [f"no HTTP answer from {url}: {exc}"]
        return _read_record(
            reply,
            self.model,
            state,
            workflow_id,
            url=url,
            set_up_by=set_up_by,
            max_body_bytes=self.max_body_bytes,
        )

    async def _newer_version(self, case: Case, workflow_id: str) -> list[str]:
        assert case.state is not None and case.later_state is not None
        first, reasons = await self._read(case, case.state, workflow_id)
        problems = [f"first read, in {case.state!r}: {reason}" for reason in reasons]
        if first is None:  # nothing to compare with, nor any reason to set up again
            return problems
        second, reasons = await self._read(case, case.later_state, workflow_id)
        problems += [f"second read, in {case.later_state!r}: {reason}" for reason in reasons]
        if second is not None and second.version <= first.version:
            problems.append(
                f"version: expected more than {first.version} after the record moved from"
                f" {case.state!r} to {case.later_state!r}, got {second.version}: the aggregator"
                " never lets a lower or equal version replace the one it holds"
            )
        return problems

    async def _within_budget(self, case: Case, workflow_id: str) -> list[str]:
        assert case.state is not None
        problem, _ = await self._set_up(case.state, workflow_id)
        if problem is not None:
            return [problem]
        url = self.url_for(workflow_id)
        gate = asyncio.Semaphore(self.latency_concurrency)
        statuses: list[int] = []
        failures: list[str] = []
        # Twice the budget is failure enough: waiting longer on a hung provider would
        # make this case take many times the kit's timeout.
        cap = min(self.timeout, max(2 * self.budget_ms / 1000, 1.0))

        async def timed() -> float:
            async with gate:
                started = time.perf_counter()
                try:
                    statuses.append((await self._get(url, seconds=cap)).status)
                except HttpError as exc:
                    failures.append(str(exc))
                    return math.inf
                return time.perf_counter() - started

        seconds = await asyncio.gather(*(timed() for _ in range(self.latency_requests)))
        reasons = []
        slowest = p99(list(seconds))
        measured = (
            f"over {cap * 1000:.0f} ms (no answer: {failures[0]})"
            if math.isinf(slowest)
            else f"{slowest * 1000:.0f} ms"
        )
        if slowest * 1000 > self.budget_ms:
            reasons.append(
                f"p99 latency {measured} over {self.latency_requests} requests of GET {url}"
                f" ({self.latency_concurrency} at a time) exceeds the budget of"
                f" {self.budget_ms} ms, the aggregator's timeout_ms (--budget-ms to match"
                " your deployment): the aggregator gives up on slower answers"
            )
        wrong = sorted({status for status in statuses if status != 200})
        if wrong:
            shown = ", ".join(f"HTTP {status}" for status in wrong)
            redirected = any(300 <= status < 400 for status in wrong)
            reasons.append(
                f"expected HTTP 200 to every request of GET {url}, got {shown}"
                + (REDIRECT if redirected else "")
            )
        return reasons

    async def run_case(self, case: Case) -> Result:
        started = time.perf_counter()
        workflow_id = _workflow_id(case, self.nonce)
        url = self.url_for(workflow_id)
        reasons: list[str]
        if case.expect == "newer_version":
            reasons = await self._newer_version(case, workflow_id)
        elif case.expect == "within_budget":
            reasons = await self._within_budget(case, workflow_id)
        elif case.state is not None:
            reasons = (await self._read(case, case.state, workflow_id))[1]
        else:
            try:
                reply = await self._get(url, case.headers)
            except HttpError as exc:
                reasons = [f"no HTTP answer from {url}: {exc}"]
            else:
                reasons = check_reply(reply, self.model, case, workflow_id, url=url)
        seconds = time.perf_counter() - started
        return Result(case, workflow_id, not reasons, tuple(reasons), seconds, url)

    async def run(self) -> list[Result]:
        return [await self.run_case(case) for case in self.cases()]

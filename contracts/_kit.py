"""The contract verification kit: cases a participant must pass, and the runner.

A case sets up a workflow in a given state on the provider (through its state
hook or a Python callable), asks the query API for it exactly as the aggregator
does, and checks the answer against the contract: status code, content type,
a body valid against the model in strict mode (no coercion: ``"3"`` is not an
integer), the state asked for, the workflow id asked for.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from pydantic import ValidationError

from ._http import HttpError, Reply, post_json, request
from ._media import content_encoding, is_json
from ._validation import validation_problems
from ._views import BUILTIN_VIEWS, QUERY_HEADERS, QUERY_PATHS, ParticipantView

StateSetup = Callable[[str, str, str], Awaitable[None] | None]
"""``setup(participant, state, workflow_id)``: put the provider's record in that state."""

DEFAULT_PATHS = QUERY_PATHS
AGGREGATOR_HEADERS = {
    **QUERY_HEADERS,
    "User-Agent": "choreography-status-aggregator/0.1 (contract kit)",
}
TRACE_HEADERS = {
    "X-Request-ID": "contract-kit-request",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "X-Tenant-ID": "contract-kit-tenant",
}


@dataclass(frozen=True, slots=True)
class Case:
    """One thing the provider must do."""

    name: str
    description: str
    expect: Literal["record", "not_found"]
    state: str | None = None  # the provider state to set up first
    id_stem: str = "contract"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Result:
    case: Case
    workflow_id: str
    passed: bool
    reasons: tuple[str, ...]
    seconds: float


class KitError(Exception):
    """The verification cannot run: a mistake in how it was asked for."""


def cases_for(participant: str) -> list[Case]:
    """Every case of a participant's contract, stateless ones first."""
    model = _model(participant)
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
        for state in model.states()
    ]
    first = model.states()[0]
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
    return cases


def _model(participant: str) -> type[ParticipantView]:
    model = BUILTIN_VIEWS.get(participant)
    if model is None:
        raise KitError(f"unknown participant {participant!r}; known: {sorted(BUILTIN_VIEWS)}")
    return model


def _workflow_id(case: Case, nonce: str) -> str:
    suffix = case.state.replace("_", "-") if case.state else "none"
    return f"{case.id_stem}-{suffix}-{nonce}"[:128]


def check_reply(
    reply: Reply, model: type[ParticipantView], case: Case, workflow_id: str
) -> list[str]:
    """Everything wrong with a query reply, as readable reasons; empty if it keeps the contract."""
    if case.expect == "not_found":
        if reply.status == 404:
            return []
        return [f"expected HTTP 404 for a workflow the provider never saw, got HTTP {reply.status}"]
    if reply.status != 200:
        return [f"expected HTTP 200, got HTTP {reply.status}"]
    reasons = []
    encoding = content_encoding(reply.headers)
    if encoding is not None:
        reasons.append(f"content-encoding {encoding!r}: the aggregator asks for identity")
    content_type = reply.headers.get("content-type", "")
    if not is_json(content_type):
        reasons.append(f"content type {content_type or 'missing'!r} is not application/json")
    try:
        json.loads(reply.body)
    except ValueError:
        shown = reply.body[:60].decode("utf-8", "replace")
        return [*reasons, f"body is not JSON: {shown!r}"]
    try:
        view = model.model_validate_json(reply.body, strict=True)
    except ValidationError as exc:
        return [*reasons, *validation_problems(exc, inputs=True)]
    if view.state != case.state:
        reasons.append(f"state: expected {case.state!r}, got {view.state!r}")
    if view.workflow_id != workflow_id:
        reasons.append(f"workflow_id: expected {workflow_id!r}, got {view.workflow_id!r}")
    return reasons


@dataclass
class Verifier:
    """Runs a participant's cases against a provider at ``base_url``.

    Provider states come from ``state_hook`` (a URL the kit POSTs
    ``{"participant", "state", "workflow_id"}`` to) or ``state_setup`` (a
    callable, sync or async). Without either, ``stateless_only`` must be set.

    >>> Verifier("payment", "http://127.0.0.1:8101", stateless_only=True).url_for("a:b")
    'http://127.0.0.1:8101/payments/a%3Ab'
    """

    participant: str
    base_url: str
    state_hook: str | None = None
    state_setup: StateSetup | None = None
    path: str | None = None
    timeout: float = 5.0
    stateless_only: bool = False
    nonce: str = field(default_factory=lambda: secrets.token_hex(4))

    def __post_init__(self) -> None:
        self.model = _model(self.participant)
        self.path = self.path or DEFAULT_PATHS[self.participant]
        if "{workflow_id}" not in self.path:
            raise KitError(f"path {self.path!r} must hold {{workflow_id}}")
        if self.state_hook and self.state_setup:
            raise KitError("give a state hook URL or a state setup callable, not both")
        if not (self.state_hook or self.state_setup or self.stateless_only):
            raise KitError(
                "provider states need a state hook URL or a setup callable "
                "(or ask for the stateless cases only)"
            )

    def cases(self) -> list[Case]:
        every = cases_for(self.participant)
        return [c for c in every if c.state is None] if self.stateless_only else every

    def url_for(self, workflow_id: str) -> str:
        assert self.path is not None
        return self.base_url.rstrip("/") + self.path.replace(
            "{workflow_id}", quote(workflow_id, safe="")
        )

    async def _set_up(self, case: Case, workflow_id: str) -> str | None:
        assert case.state is not None
        if self.state_setup is not None:
            try:
                outcome = self.state_setup(self.participant, case.state, workflow_id)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:
                return f"state setup failed: {type(exc).__name__}: {exc}"
            return None
        assert self.state_hook is not None
        payload = {"participant": self.participant, "state": case.state, "workflow_id": workflow_id}
        try:
            reply = await asyncio.to_thread(
                post_json, self.state_hook, payload, timeout=self.timeout
            )
        except HttpError as exc:
            return f"state hook {self.state_hook} unreachable: {exc}"
        if not 200 <= reply.status < 300:
            return f"state hook answered HTTP {reply.status} for {payload}"
        return None

    async def run_case(self, case: Case) -> Result:
        started = time.perf_counter()
        workflow_id = _workflow_id(case, self.nonce)
        reasons: list[str] = []
        problem = await self._set_up(case, workflow_id) if case.state is not None else None
        if problem is not None:
            reasons.append(problem)
        else:
            try:
                reply = await asyncio.to_thread(
                    request,
                    "GET",
                    self.url_for(workflow_id),
                    headers={**AGGREGATOR_HEADERS, **case.headers},
                    timeout=self.timeout,
                )
            except HttpError as exc:
                reasons.append(f"no HTTP answer from {self.url_for(workflow_id)}: {exc}")
            else:
                reasons = check_reply(reply, self.model, case, workflow_id)
        seconds = time.perf_counter() - started
        return Result(case, workflow_id, not reasons, tuple(reasons), seconds)

    async def run(self) -> list[Result]:
        return [await self.run_case(case) for case in self.cases()]

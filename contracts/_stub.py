"""A stub participant: contract-valid answers without a real service, for trying a
consumer (a gateway, a dashboard) and its failure handling.

``python -m contracts stub payment --port 8101`` answers ``GET`` on the
participant's query path:

- an id set up through the state hook (``POST /_contract/state``, as the kit
  does) is served in that state, its ``version`` one higher at each set-up;
- an id ``<state>-anything`` (``captured-42``) is served in that state;
- an id starting ``missing-``, or any other, is a 404 problem;
- ``--latency-ms`` delays every answer, ``--error-rate`` answers that share with
  a 503 problem (seeded by ``--seed``).

The standard library serves it; every body is rendered by the contract model.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError

from ._views import PLACEHOLDER, Contract, ParticipantView, view_of

# Plausible domain fields for each participant (the common ones are the stub's).
SAMPLES: dict[str, dict[str, Any]] = {
    "payment": {"amount": 1999, "currency": "EUR"},
    "inventory": {"items": [{"sku": "book-1", "quantity": 1}]},
    "shipping": {"carrier": "parcelco", "tracking_number": "PC0000000001"},
}
STATE_HOOK = "/_contract/state"
MAX_HOOK_BODY = 65_536
SINCE = datetime(2026, 1, 1, 10, tzinfo=UTC)  # when an id that names its state last changed


@dataclass(frozen=True, slots=True)
class StubOptions:
    """What the stub serves, where, and how badly. Port 0 picks a free port. A
    participant declared in configuration gives its ``states`` and ``path``."""

    participant: str
    host: str = "127.0.0.1"
    port: int = 0
    latency_ms: int = 0
    error_rate: float = 0.0
    seed: int = 0
    states: Sequence[str] = ()
    path: str | None = None

    def contract(self) -> Contract:
        return Contract.of(self.participant, states=self.states, path=self.path)

    def __post_init__(self) -> None:
        self.contract()  # raises ValueError if the participant's contract is unknown
        if not 0 <= self.port <= 65_535:
            raise ValueError(f"port {self.port} is not between 0 and 65535")
        if self.latency_ms < 0:
            raise ValueError("the latency must be 0 ms or more")
        if not 0 <= self.error_rate <= 1:
            raise ValueError("the error rate must be between 0 and 1")


class Stub:
    """The stub on its own thread, as a context manager.

    >>> with Stub(StubOptions("payment")) as stub:
    ...     stub.base_url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(self, options: StubOptions) -> None:
        self.options = options
        contract = options.contract()
        self.model: type[ParticipantView] = contract.model
        self.path = contract.path
        # Matched on the path alone: a query in the contract's path is the caller's.
        self.prefix, self.suffix = urlsplit(contract.path).path.split(PLACEHOLDER)
        # Set up through the hook: state, version, and when it changed.
        self._records: dict[str, tuple[str, int, datetime]] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(options.seed)
        self._server = _Server((options.host, options.port), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Stub:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    # --- answers ---------------------------------------------------------------------

    def query(self, workflow_id: str) -> tuple[int, dict[str, Any]]:
        o = self.options
        with self._lock:
            failing = o.error_rate > 0 and self._rng.random() < o.error_rate
            recorded = self._records.get(workflow_id)
        if o.latency_ms:
            time.sleep(o.latency_ms / 1000)
        if failing:
            return _problem(503, "Stubbed failure", "the stub was asked to fail this share")
        state, version, at = recorded or (self._state_named_by(workflow_id), 1, SINCE)
        missing = _problem(404, "No record", f"the stub has no record of {workflow_id[:140]!r}")
        if not state:
            return missing
        try:
            return 200, self._view(workflow_id, state, version, at)
        except ValidationError:  # an id the contract refuses: no participant has one
            return missing

    def _state_named_by(self, workflow_id: str) -> str:
        if workflow_id.startswith("missing-"):
            return ""
        named = [s for s in self.model.states() if workflow_id.startswith(f"{s}-")]
        return max(named, key=len, default="")

    def set_state(self, body: bytes) -> tuple[int, dict[str, Any]]:
        detail = "send {'participant', 'state', 'workflow_id'} as JSON, each a string"
        try:
            wanted = json.loads(body)
            participant, state, workflow_id = (
                wanted["participant"], wanted["state"], wanted["workflow_id"]
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, RecursionError):
            return _problem(400, "Invalid provider state", detail)
        if not all(isinstance(value, str) for value in (participant, state, workflow_id)):
            return _problem(400, "Invalid provider state", detail)
        if participant != self.options.participant:
            detail = f"this is {self.options.participant}, not {participant}"
            return _problem(400, "Wrong participant", detail)
        if state not in self.model.states():
            detail = f"{participant} has no state {state!r}; it has {list(self.model.states())}"
            return _problem(400, "Unknown state", detail)
        at = datetime.now(UTC)  # a change: it is when the record last changed
        with self._lock:
            version = self._records.get(workflow_id, ("", 0, at))[1] + 1
            try:
                view = self._view(workflow_id, state, version, at)
            except ValidationError as exc:  # an id the contract refuses: not kept
                return _problem(400, "Invalid provider state", str(exc.errors()[0]["msg"]))
            self._records[workflow_id] = (state, version, at)
        return 201, view

    def _view(self, workflow_id: str, state: str, version: int, at: datetime) -> dict[str, Any]:
        return example(self.options.participant, workflow_id, state, version, at, model=self.model)


def example(
    participant: str,
    workflow_id: str,
    state: str,
    version: int,
    at: datetime | None = None,
    *,
    model: type[ParticipantView] | None = None,
) -> dict[str, Any]:
    """A contract-valid answer of ``participant`` (JSON-ready), changed ``at`` (now by
    default), validated by its model (a declared participant's given as ``model``);
    ValidationError if the id or state is not one the contract allows."""
    fields = {
        **SAMPLES.get(participant, {}),
        "workflow_id": workflow_id,
        "state": state,
        "version": version,
        "updated_at": at or datetime.now(UTC),
    }
    model = model or view_of(participant)
    rendered: dict[str, Any] = model.model_validate(fields).model_dump(mode="json")
    return rendered


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that stalled or went away: its connection is dropped, quietly


def _problem(status: int, title: str, detail: str) -> tuple[int, dict[str, Any]]:
    return status, {"type": "about:blank", "title": title, "status": status, "detail": detail}


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "contract-stub"
        timeout = 10  # seconds a connection may stall, sending or reading, before it is dropped

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            segment = path.removeprefix(stub.prefix).removesuffix(stub.suffix)
            whole = len(stub.prefix) + len(segment) + len(stub.suffix) == len(path)
            if not whole or not segment or "/" in segment:
                self._send(*_problem(404, "Not found", f"the stub answers {stub.path}"))
                return
            self._send(*stub.query(unquote(segment)))

        def do_POST(self) -> None:
            if urlsplit(self.path).path != STATE_HOOK:
                self._send(*_problem(404, "Not found", f"POST goes to {STATE_HOOK}"))
                return
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit() or int(length) > MAX_HOOK_BODY:
                detail = f"a Content-Length of at most {MAX_HOOK_BODY} bytes"
                self._send(*_problem(400, "Invalid provider state", detail))
                return
            self._send(*stub.set_state(self.rfile.read(int(length))))

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            kind = "application/json" if status < 400 else "application/problem+json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: a consumer's test output is its own

    return Handler

"""What every reference participant shares: its query API, its faults, its delayed steps."""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts import QUERY_PATHS, ParticipantView, validation_problems

from ._bus import Bus
from ._bus import Handler as EventHandler
from ._chance import Chance
from ._events import Event, EventType
from ._staging import FaultKind, Staging
from ._store import Record, Store

JSON = "application/json"


class Faults(BaseModel):
    """What the admin endpoint can make a participant do to its query API."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(0, ge=0, le=60_000)
    error_rate: float = Field(0.0, ge=0.0, le=1.0)
    dark: bool = False  # accept requests but never answer them


class ProviderState(BaseModel):
    """What the contract kit asks for: this participant's record of a workflow, in a state."""

    model_config = ConfigDict(extra="forbid")

    participant: str
    state: str
    workflow_id: str = Field(min_length=1, max_length=128)


def _problem(status: int, title: str, detail: str) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return web.json_response(body, status=status, content_type="application/problem+json")


class Participant(ABC):
    """A reference participant: local state, events in and out, a query API.

    Subclasses name themselves (one of the built-in participants: their query
    path is ``QUERY_PATHS[name]``) and their contract model, and subscribe their
    handlers in ``wire``.
    """

    name: ClassVar[str]
    view: ClassVar[type[ParticipantView]]

    def __init__(
        self,
        store: Store,
        bus: Bus,
        chance: Chance,
        *,
        rng: random.Random | None = None,
        staging: Staging | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.chance = chance
        self.staging = staging or Staging()
        self.faults = Faults()
        self._rng = rng or random.Random(chance.seed)
        self._light = asyncio.Event()
        self._light.set()
        self._steps: set[asyncio.Task[None]] = set()
        self.wire()

    @abstractmethod
    def wire(self) -> None:
        """Subscribe this participant's handlers to the bus, with ``react``."""

    @abstractmethod
    def sample(self, state: str) -> dict[str, Any]:
        """Plausible domain fields for a record in ``state`` (for provider states)."""

    # --- behaviour helpers -----------------------------------------------------------

    def react(self, event_type: EventType, handler: EventHandler) -> None:
        """Subscribe ``handler``; an event the seed says is lost for its order is
        acknowledged and dropped instead, every time it is delivered."""

        async def unless_lost(event: Event) -> None:
            if self.chance.lost_event(event.workflow_id) is event.type:
                self.staging.record(event.workflow_id, FaultKind.LOST_EVENT, event.type)
                return
            await handler(event)

        self.bus.subscribe(event_type, unless_lost)

    def later(self, workflow_id: str, step: str, then: Callable[[], Awaitable[None]]) -> None:
        """Run ``then`` after the seeded delay of this step."""
        delay = self.chance.delay(workflow_id, f"{self.name}:{step}")

        async def wait_then() -> None:
            await asyncio.sleep(delay)
            await then()

        task = asyncio.create_task(wait_then())
        self._steps.add(task)
        task.add_done_callback(self._steps.discard)

    async def aclose(self) -> None:
        """Cancel the steps still waiting, and release requests held by ``dark``."""
        self._light.set()
        steps = list(self._steps)
        for task in steps:
            task.cancel()
        await asyncio.gather(*steps, return_exceptions=True)

    async def announce(self, event_type: EventType, workflow_id: str, **data: Any) -> None:
        await self.bus.publish(Event(type=event_type, workflow_id=workflow_id, data=data))

    def render(self, record: Record) -> ParticipantView:
        """The record as the contract model; the model validates what is served."""
        return self.view.model_validate(
            {
                **record.data,
                "workflow_id": record.workflow_id,
                "state": record.state,
                "version": record.version,
                "updated_at": record.updated_at,
            }
        )

    # --- HTTP --------------------------------------------------------------------------

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        if faults.dark:
            self._light.clear()
        else:
            self._light.set()

    async def _query(self, request: web.Request) -> web.StreamResponse:
        workflow_id = request.match_info["workflow_id"]
        record = await self.store.get(workflow_id)
        if record is None:
            return _problem(404, "No record", f"{self.name} has no record of {workflow_id!r}")
        return web.Response(body=self.render(record).model_dump_json().encode(), content_type=JSON)

    @web.middleware
    async def _faulty(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_"):
            return await handler(request)
        await self._light.wait()
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.error_rate and self._rng.random() < faults.error_rate:
            return _problem(503, "Injected failure", "the admin endpoint asked for failures")
        return await handler(request)

    async def _get_faults(self, _: web.Request) -> web.StreamResponse:
        return web.json_response(self.faults.model_dump())

    async def _put_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            faults = Faults.model_validate_json(await request.read())
        except ValidationError as exc:
            return _problem(400, "Invalid faults", validation_problems(exc)[0])
        self.set_faults(faults)
        return web.json_response(faults.model_dump())

    async def _set_state(self, request: web.Request) -> web.StreamResponse:
        try:
            wanted = ProviderState.model_validate_json(await request.read())
        except ValidationError as exc:
            return _problem(400, "Invalid provider state", validation_problems(exc)[0])
        if wanted.participant != self.name:
            return _problem(
                400, "Wrong participant", f"this is {self.name}, not {wanted.participant}"
            )
        if wanted.state not in self.view.states():
            detail = f"{self.name} has no state {wanted.state!r}; it has {list(self.view.states())}"
            return _problem(400, "Unknown state", detail)
        record = await self.store.put(wanted.workflow_id, wanted.state, self.sample(wanted.state))
        return web.json_response(self.render(record).model_dump(mode="json"), status=201)

    def app(self, *, admin: bool = False, state_hook: bool = False) -> web.Application:
        """The participant's HTTP application; the admin endpoint and the contract
        kit's state hook (``POST /_contract/state``) only when asked for."""
        app = web.Application(middlewares=[self._faulty])
        app.router.add_get(QUERY_PATHS[self.name], self._query, allow_head=False)
        if admin:
            app.router.add_get("/_admin/faults", self._get_faults, allow_head=False)
            app.router.add_put("/_admin/faults", self._put_faults)
        if state_hook:
            app.router.add_post("/_contract/state", self._set_state)
        return app

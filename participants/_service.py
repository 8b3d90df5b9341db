"""What every reference participant shares: its query API, its faults, its delayed steps."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts import QUERY_PATHS, ParticipantView, validation_problems

from ._bus import Bus
from ._bus import Handler as EventHandler
from ._chance import Chance
from ._events import Event, EventType
from ._store import Later, Record, Step, Store
from ._tracing import handling, publishing, serving, stepping, trace_headers

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


StepHandler = Callable[[Step], Awaitable[None]]
log = logging.getLogger("participants.service")
# A step that fails, or an event the bus does not take, is tried again after
# RETRY_AFTER seconds, then twice as long each time up to RETRY_AT_MOST.
RETRY_AFTER = 1.0
RETRY_AT_MOST = 30.0
FLUSH_FOR = 2.0
OUTBOX_BATCH = 256  # events read from the outbox at a time


class Participant(ABC):
    """A reference participant: local state, events in and out, a query API.

    Subclasses name themselves (one of the built-in participants: their query
    path is ``QUERY_PATHS[name]``) and their contract model, and subscribe their
    handlers and steps in ``wire``.

    Everything a participant does is durable: a handler's change, the events it
    causes (written to the outbox, published by ``start``'s relay) and the steps
    it schedules are committed together, and ``start`` takes up the steps a
    previous run left. Killed at any moment and started again, it goes on.
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
    ) -> None:
        self.store = store
        self.bus = bus
        self.chance = chance
        self.faults = Faults()
        self._rng = rng or random.Random(chance.seed)
        self._light = asyncio.Event()
        self._light.set()
        self._step_handlers: dict[str, StepHandler] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._outbox = asyncio.Event()  # set when the outbox may have rows to publish
        self.wire()

    @abstractmethod
    def wire(self) -> None:
        """Subscribe this participant's handlers (``react``) and name its steps (``step``)."""

    @abstractmethod
    def sample(self, state: str) -> dict[str, Any]:
        """Plausible domain fields for a record in ``state`` (for provider states)."""

    # --- behaviour helpers -----------------------------------------------------------

    def react(self, event_type: EventType, handler: EventHandler) -> None:
        """Subscribe ``handler``; an event the seed says is lost for its order is
        acknowledged and dropped instead, every time it is delivered."""

        async def unless_lost(event: Event) -> None:
            if self.chance.lost_event(event.workflow_id) is event.type:
                log.info("%s drops %s for %s (staged)", self.name, event.type, event.workflow_id)
                return
            with handling(self.name, event):
                await handler(event)

        self.bus.subscribe(event_type, unless_lost)

    def step(self, name: str, handler: StepHandler) -> None:
        """Name a step ``later`` can schedule; ``handler`` takes it with ``commit(step=...)``."""
        self._step_handlers[name] = handler

    def later(self, step: str, workflow_id: str, **data: Any) -> Later:
        """The step, after the seeded delay it takes for this workflow."""
        return Later(step, self.chance.delay(workflow_id, f"{self.name}:{step}"), data)

    async def commit(
        self,
        workflow_id: str,
        state: str | None,
        *,
        event_id: str | None = None,
        step: Step | None = None,
        when: Iterable[str | None] = (None,),
        data: dict[str, Any] | None = None,
        emit: Sequence[tuple[EventType, dict[str, Any]]] = (),
        then: Sequence[Later] = (),
    ) -> Record | None:
        """``Store.change`` with events to emit and steps to take, all in one
        transaction; then the steps are scheduled and the relay woken."""
        events = [Event(type=kind, workflow_id=workflow_id, data=body) for kind, body in emit]
        record = await self.store.change(
            workflow_id,
            state,
            event_id=event_id,
            step=None if step is None else step.name,
            when=when,
            data=data,
            emit=[(event.event_id, event.model_dump_json()) for event in events],
            then=then,
            headers=trace_headers(),
        )
        if record is None and state is not None:
            return None
        if record is not None:  # in the log with the trace of the change, if recorded
            log.info("%s %s: %s (version %d)", self.name, workflow_id, state, record.version)
        for later in then:
            self._spawn(self._take(workflow_id, later.name, later.delay))
        if events:
            self._outbox.set()
        return record

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        # In a context of its own: a step is not part of the span that scheduled it
        # (it carries that span's context in its row instead).
        task = asyncio.create_task(work, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Take up the steps left by an earlier run, and publish what the outbox holds."""
        now = self.store.clock()
        for pending in await self.store.steps():
            self._spawn(self._take(pending.workflow_id, pending.name, pending.due - now))
        self._spawn(self._relay())

    async def _take(self, workflow_id: str, name: str, delay: float) -> None:
        await asyncio.sleep(max(0.0, delay))
        attempt = 0
        while (pending := await self.store.step(workflow_id, name)) is not None:
            attempt += 1
            try:
                with stepping(self.name, pending):
                    await self._step_handlers[name](pending)
            except Exception:
                # Never dropped (the order would stop): again, less and less often.
                wait = min(RETRY_AFTER * 2 ** (attempt - 1), RETRY_AT_MOST)
                log.exception(
                    "%s: step %s of %s failed (try %d); again in %g s",
                    self.name, name, workflow_id, attempt, wait,
                )  # fmt: skip
                await asyncio.sleep(wait)
            else:
                return

    async def _relay(self) -> None:
        """Publish the outbox in order, marking each event sent once the bus has it.

        A crash before the mark publishes the event again at the next start; the
        bus drops it by its id (JetStream's deduplication; consumers' event ids)."""
        while True:
            self._outbox.clear()
            if await self._publish_unsent() == OUTBOX_BATCH:
                continue  # more are waiting
            if not self._outbox.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outbox.wait(), RETRY_AFTER)

    async def _publish_unsent(self) -> int:
        """Publish a batch of the outbox; how many events it held."""
        batch = await self.store.unsent(OUTBOX_BATCH)
        for outgoing in batch:
            event = Event.model_validate_json(outgoing.event).model_copy(
                update={"trace": outgoing.headers}
            )
            attempt = 0
            while True:
                try:
                    with publishing(self.name, event) as headers:
                        await self.bus.publish(event.model_copy(update={"trace": headers}))
                except Exception as exc:
                    attempt += 1
                    wait = min(RETRY_AFTER * 2 ** (attempt - 1), RETRY_AT_MOST)
                    log.warning("%s: cannot publish %s yet: %s", self.name, event.type, exc)
                    await asyncio.sleep(wait)
                else:
                    break
            await self.store.mark_sent(outgoing.seq)
        return len(batch)

    async def aclose(self) -> None:
        """Stop the steps (they stay in the database, for the next start), publish
        what the outbox still holds (for ``FLUSH_FOR`` seconds at most: the rest
        goes at the next start), and release requests held by ``dark``."""
        self._light.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH_FOR):
                while await self._publish_unsent() == OUTBOX_BATCH:
                    pass

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
        with serving(self.name, workflow_id, request.headers) as span:
            record = await self.store.get(workflow_id)
            if record is None:
                span.set_attribute("http.response.status_code", 404)
                return _problem(404, "No record", f"{self.name} has no record of {workflow_id!r}")
            body = self.render(record).model_dump_json().encode()
            span.set_attribute("http.response.status_code", 200)
            return web.Response(body=body, content_type=JSON)

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

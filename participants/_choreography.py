"""Run the three reference participants together, each on its own port with its own database."""

from __future__ import annotations

import asyncio
import os
import random
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiohttp import web

from contracts import QUERY_PATHS

from ._bus import InProcessBus
from ._chance import Chance
from ._events import Event, order_placed
from ._resource import StackOwned, data_dir
from ._service import Participant
from ._staging import Misrouter, Staging
from ._store import Store
from ._tracing import placing
from .inventory import InventoryService
from .payment import PaymentService
from .shipping import ShippingService

SERVICES: dict[str, type[Participant]] = {
    service.name: service for service in (PaymentService, InventoryService, ShippingService)
}
DEFAULT_PORTS = {"payment": 8101, "inventory": 8102, "shipping": 8103}
CATALOGUE = ["book-1", "mug-2", "lamp-3", "pen-4", "bag-5"]


class ListenError(Exception):
    """A port could not be listened on; the message names it."""


@dataclass(frozen=True, slots=True)
class ChoreographyConfig:
    """How to run the participants. Port 0 picks a free port."""

    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    only: tuple[str, ...] = ("payment", "inventory", "shipping")
    db_dir: Path | None = None  # None: a temporary directory, removed at the end
    chance: Chance = field(default_factory=Chance)
    duplicate_rate: float = 0.05
    admin: bool = False
    state_hook: bool = False  # POST /_contract/state, for the contract kit
    # "memory": one process, an in-process bus (Choreography). "nats": each participant
    # a process of its own on JetStream (ProcessChoreography).
    bus: Literal["memory", "nats"] = "memory"
    nats_url: str | None = None  # None: start a JetStream server for the run
    ack_wait: float = 5.0  # seconds before JetStream delivers an unacknowledged event again
    trace_dir: Path | None = None  # participant processes write their spans here (JSON lines)
    trace_workflow: str | None = None  # and only this workflow's, if named


async def listen(app: web.Application, host: str, port: int, what: str) -> web.AppRunner:
    """Start ``app`` on host:port, or raise ListenError naming the port."""
    # A client that goes away cancels its request's handler: no work for nobody.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
        raise ListenError(f"cannot listen on {host}:{port} for {what}: {reason}") from None
    return runner


class Choreography(StackOwned):
    """The reference participants, their bus and their databases, as one resource.

    Example::

        async with Choreography(ChoreographyConfig()) as run:
            workflow_id = await run.place_order()
    """

    def __init__(self, config: ChoreographyConfig) -> None:
        self.config = config
        self.bus = InProcessBus(
            duplicate_rate=config.duplicate_rate, rng=random.Random(config.chance.seed)
        )
        self.staging = Staging()  # the staged faults, as they take effect
        self.services: dict[str, Participant] = {}
        self.urls: dict[str, str] = {}  # participant -> URL template for the aggregator
        self.base_urls: dict[str, str] = {}
        self.db_dir: Path | None = None
        self._stack = AsyncExitStack()
        self._orders = 0
        self._rng = random.Random(f"{config.chance.seed}:shop")

    async def __aenter__(self) -> Choreography:
        stack = self._stack
        try:
            self.db_dir = data_dir(stack, self.config.db_dir)
            for name in self.config.only:
                service_type = SERVICES[name]
                store = await stack.enter_async_context(Store(self.db_dir / f"{name}.sqlite3"))
                service = service_type(store, self.bus, self.config.chance)
                runner = await listen(
                    service.app(admin=self.config.admin, state_hook=self.config.state_hook),
                    self.config.host,
                    self.config.ports.get(name, 0),
                    name,
                )
                stack.push_async_callback(runner.cleanup)
                port = runner.addresses[0][1]
                base = f"http://{self.config.host}:{port}"
                self.services[name] = service
                self.base_urls[name] = base
                self.urls[name] = base + QUERY_PATHS[name]
            self.staging.observe(self.bus, self.config.chance)
            if self.config.chance.rogue_event_rate > 0:
                Misrouter(self.bus, self.config.chance, self.staging)
            for service in self.services.values():
                await service.start()
            # Closed first: no step or delivery may touch a database after it closes.
            stack.push_async_callback(self._quiesce)
            if "payment" in self.services:
                self._orders = await self.services["payment"].store.count()
        except BaseException:
            await stack.aclose()
            raise
        return self

    async def _quiesce(self) -> None:
        await self.bus.__aexit__(None, None, None)
        await asyncio.gather(*(service.aclose() for service in self.services.values()))
        await self.bus.__aexit__(None, None, None)  # deliveries the last steps started

    async def place_order(self) -> str:
        """Announce OrderPlaced for a new order, as a shop front would; return its id."""
        self._orders += 1
        with placing(new_order(self._rng, self._orders)) as event:
            await self.bus.publish(event)
        return event.workflow_id

    @property
    def next_order(self) -> str:
        """The id the next order placed will have."""
        return order_id(self._orders + 1)


def new_order(rng: random.Random, number: int) -> Event:
    """The shop front's order ``number``: ``order-0042``, a few items drawn by ``rng``."""
    quantities = {sku: rng.randint(1, 3) for sku in rng.sample(CATALOGUE, rng.randint(1, 3))}
    items: list[dict[str, object]] = [
        {"sku": sku, "quantity": quantity} for sku, quantity in quantities.items()
    ]
    amount = 1250 * sum(quantities.values())
    return order_placed(order_id(number), amount=amount, currency="EUR", items=items)


def order_id(number: int) -> str:
    """The shop front's id of its order ``number``.

    >>> order_id(42)
    'order-0042'
    """
    return f"order-{number:04d}"


def order_number(workflow_id: str) -> int:
    """The number of the shop front's order ``workflow_id``; 0 for another id.

    >>> order_number("order-0042"), order_number("trip-7")
    (42, 0)
    """
    prefix, _, number = workflow_id.partition("-")
    return int(number) if prefix == "order" and number.isdigit() else 0

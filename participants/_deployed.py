"""One reference participant as a team deploys it: a process of its own, its own
SQLite database, events through JetStream."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from contracts import QUERY_PATHS

from ._chance import Chance
from ._choreography import SERVICES, listen
from ._nats import NatsBus
from ._resource import StackOwned
from ._service import Participant
from ._store import Store


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where one participant runs and what it reacts to. Port 0 picks a free port."""

    name: str
    nats_url: str
    db_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    chance: Chance = field(default_factory=Chance)
    ack_wait: float = 5.0  # seconds before an unacknowledged event is delivered again
    admin: bool = False
    state_hook: bool = False


class Deployed(StackOwned):
    """The participant running: its query API listening, its consumer pulling, its
    outbox relay publishing, and the steps an earlier run left taken up.

    Example::

        async with Deployed(Deployment("payment", url, Path("data"))) as payment:
            print(payment.url)
    """

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.base_url = ""
        self.url = ""
        self._stack = AsyncExitStack()
        self.service: Participant | None = None

    async def __aenter__(self) -> Deployed:
        d, stack = self.deployment, self._stack
        try:
            d.db_dir.mkdir(parents=True, exist_ok=True)
            store = await stack.enter_async_context(Store(d.db_dir / f"{d.name}.sqlite3"))
            bus = await stack.enter_async_context(
                NatsBus(d.nats_url, consumer=d.name, ack_wait=d.ack_wait)
            )
            service = self.service = SERVICES[d.name](store, bus, d.chance)
            runner = await listen(
                service.app(admin=d.admin, state_hook=d.state_hook), d.host, d.port, d.name
            )
            stack.push_async_callback(runner.cleanup)
            stack.push_async_callback(service.aclose)
            # First out: no event may start a handler once the steps and relay are stopped.
            stack.push_async_callback(bus.stop)
            await service.start()
            await bus.start()
            self.base_url = f"http://{d.host}:{runner.addresses[0][1]}"
            self.url = self.base_url + QUERY_PATHS[d.name]
        except BaseException:
            await stack.aclose()
            raise
        return self

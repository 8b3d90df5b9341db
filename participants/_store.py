"""Each participant's own SQLite database: its records, the events it has handled,
the events it must publish (its outbox) and the steps it has yet to take.

A change, the event that caused it, the events it causes and the steps it
schedules are written in one transaction: a crash leaves all of them or none.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import aiosqlite

from ._resource import hold

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    workflow_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS handled_events (
    event_id TEXT PRIMARY KEY,
    handled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    headers TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS steps (
    workflow_id TEXT NOT NULL,
    step TEXT NOT NULL,
    due REAL NOT NULL,
    data TEXT NOT NULL,
    headers TEXT NOT NULL,
    PRIMARY KEY (workflow_id, step)
);
"""


@dataclass(frozen=True, slots=True)
class Record:
    workflow_id: str
    state: str
    version: int
    updated_at: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Step:
    """A step a participant has yet to take for a workflow, due at ``due`` (epoch
    seconds: it survives a restart). ``headers`` carry the trace context of the
    change that scheduled it."""

    workflow_id: str
    name: str
    due: float
    data: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event waiting in the outbox, as written: its JSON and its headers."""

    seq: int
    event_id: str
    event: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Later:
    """A step to schedule with a change: ``name`` after ``delay`` seconds."""

    name: str
    delay: float
    data: Mapping[str, Any] = field(default_factory=dict)


class Store:
    """A participant's state, in one SQLite file it alone opens.

    Every change runs in one transaction with the id of the event that caused
    it, so an event delivered twice changes nothing the second time.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock  # epoch seconds: when steps are due
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()  # one connection: transactions must not interleave
        self._owner: IO[bytes] | None = None

    async def __aenter__(self) -> Store:
        self._own()
        try:
            self._db = await aiosqlite.connect(self.path)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.executescript(_SCHEMA)
            await self._db.commit()
            # Queries read on a connection of their own: in WAL mode it sees only
            # committed changes, and never waits for a write.
            self._reader = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    def _own(self) -> None:
        """Hold the database alone: a second process on it would take the same steps
        and publish the same outbox."""
        self._owner = hold(self.path.with_name(self.path.name + ".lock"), self.path)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for connection in (self._reader, self._db):
            if connection is not None:
                await connection.close()
        self._db = self._reader = None
        if self._owner is not None:
            self._owner.close()  # and with it the lock
            self._owner = None

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("Store used outside 'async with'")
        return self._db

    @property
    def _read(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("Store used outside 'async with'")
        return self._reader

    async def get(self, workflow_id: str) -> Record | None:
        """The record as last committed."""
        return await self._get_in(self._read, workflow_id)

    async def change(
        self,
        workflow_id: str,
        state: str | None,
        *,
        event_id: str | None = None,
        step: str | None = None,
        when: Iterable[str | None] = (None,),
        data: dict[str, Any] | None = None,
        emit: Sequence[tuple[str, str]] = (),
        then: Sequence[Later] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Record | None:
        """Move the record to ``state`` if its current state is in ``when`` (None: no
        record), in one transaction with what the change causes.

        ``event_id``: the event this handles; ``step``: the scheduled step this takes.
        Either already done makes the call change nothing. ``emit``: events (id, JSON)
        to put in the outbox; ``then``: steps to schedule; both only if the record
        changes, with ``headers`` (trace context). ``state`` None changes no record and
        only schedules ``then`` (after noting the event).

        Returns the new record, or None when the event or step was already handled,
        the record is not in a state this change applies to, or ``state`` is None.
        """
        allowed = set(when)
        async with self._lock:
            db = self._conn
            await db.execute("BEGIN IMMEDIATE")
            try:
                now = datetime.now(UTC)
                if event_id is not None:
                    cursor = await db.execute(
                        "INSERT OR IGNORE INTO handled_events VALUES (?, ?)",
                        (event_id, now.isoformat()),
                    )
                    if cursor.rowcount == 0:
                        await db.rollback()
                        return None
                if step is not None:
                    cursor = await db.execute(
                        "DELETE FROM steps WHERE workflow_id = ? AND step = ?", (workflow_id, step)
                    )
                    if cursor.rowcount == 0:
                        await db.rollback()
                        return None
                record = None
                if state is not None:
                    current = await self._get_in(db, workflow_id)
                    if (current.state if current else None) not in allowed:
                        await db.commit()  # keep the event or step as handled: it does not apply
                        return None
                    merged = {**(current.data if current else {}), **(data or {})}
                    record = Record(
                        workflow_id, state, (current.version if current else 0) + 1, now, merged
                    )
                    await db.execute(
                        "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)",
                        (workflow_id, state, record.version, now.isoformat(), json.dumps(merged)),
                    )
                    await db.executemany(
                        "INSERT INTO outbox (event_id, event, headers) VALUES (?, ?, ?)",
                        [(eid, body, json.dumps(headers or {})) for eid, body in emit],
                    )
                await db.executemany(
                    "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            workflow_id,
                            later.name,
                            self.clock() + later.delay,
                            json.dumps(dict(later.data)),
                            json.dumps(headers or {}),
                        )
                        for later in then
                    ],
                )
                await db.commit()
                return record
            except BaseException:
                await db.rollback()
                raise

    async def put(self, workflow_id: str, state: str, data: dict[str, Any]) -> Record:
        """Set the record to ``state`` whatever it was (a contract test's provider state)."""
        async with self._lock, self._transaction() as db:
            current = await self._get_in(db, workflow_id)
            now = datetime.now(UTC)
            record = Record(workflow_id, state, (current.version if current else 0) + 1, now, data)
            await db.execute(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)",
                (workflow_id, state, record.version, now.isoformat(), json.dumps(data)),
            )
            return record

    async def _get_in(self, db: aiosqlite.Connection, workflow_id: str) -> Record | None:
        async with db.execute(
            "SELECT workflow_id, state, version, updated_at, data FROM records"
            " WHERE workflow_id = ?",
            (workflow_id,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return Record(row[0], row[1], row[2], datetime.fromisoformat(row[3]), json.loads(row[4]))

    async def count(self) -> int:
        async with self._read.execute("SELECT COUNT(*) FROM records") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def steps(self) -> list[Step]:
        """The steps not yet taken, earliest first."""
        async with (
            self._lock,
            self._conn.execute(
                "SELECT workflow_id, step, due, data, headers FROM steps ORDER BY due"
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [Step(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4])) for r in rows]

    async def step(self, workflow_id: str, name: str) -> Step | None:
        async with (
            self._lock,
            self._conn.execute(
                "SELECT workflow_id, step, due, data, headers FROM steps"
                " WHERE workflow_id = ? AND step = ?",
                (workflow_id, name),
            ) as cursor,
        ):
            r = await cursor.fetchone()
        return None if r is None else Step(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]))

    async def unsent(self, limit: int = 256) -> list[Outgoing]:
        """Events in the outbox not yet marked sent, in the order they were written
        (read between transactions: never an event a transaction may still undo)."""
        async with (
            self._lock,
            self._conn.execute(
                "SELECT seq, event_id, event, headers FROM outbox"
                " WHERE sent = 0 ORDER BY seq LIMIT ?",
                (limit,),
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [Outgoing(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    async def mark_sent(self, seq: int) -> None:
        async with self._lock, self._transaction() as db:
            await db.execute("UPDATE outbox SET sent = 1 WHERE seq = ?", (seq,))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Commit what the block wrote, or roll it back if it raised or was cancelled: an
        open transaction left behind would show its writes to the reads after it."""
        db = self._conn
        try:
            yield db
            await db.commit()
        except BaseException:
            await db.rollback()
            raise

    async def outbox_counts(self) -> tuple[int, int]:
        """Events written to the outbox, and how many of them are marked sent."""
        query = "SELECT COUNT(*), COALESCE(SUM(sent), 0) FROM outbox"
        async with self._lock, self._conn.execute(query) as c:
            row = await c.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

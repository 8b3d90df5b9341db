"""Each participant's own SQLite database: its records and the events it has handled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

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
"""


@dataclass(frozen=True, slots=True)
class Record:
    workflow_id: str
    state: str
    version: int
    updated_at: datetime
    data: dict[str, Any]


class Store:
    """A participant's state, in one SQLite file it alone opens.

    Every change runs in one transaction with the id of the event that caused
    it, so an event delivered twice changes nothing the second time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()  # one connection: transactions must not interleave

    async def __aenter__(self) -> Store:
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.executescript(_SCHEMA)
        await self._db.commit()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("Store used outside 'async with'")
        return self._db

    async def get(self, workflow_id: str) -> Record | None:
        return await self._get_in(self._conn, workflow_id)

    async def change(
        self,
        workflow_id: str,
        state: str,
        *,
        event_id: str | None = None,
        when: Iterable[str | None] = (None,),
        data: dict[str, Any] | None = None,
    ) -> Record | None:
        """Move the record to ``state`` if its current state is in ``when`` (None: no record).

        Returns the new record, or None when the event was already handled or
        the record is not in a state this change applies to.
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
                current = await self._get_in(db, workflow_id)
                if (current.state if current else None) not in allowed:
                    await db.commit()  # keep the event as handled: it does not apply
                    return None
                merged = {**(current.data if current else {}), **(data or {})}
                record = Record(
                    workflow_id, state, (current.version if current else 0) + 1, now, merged
                )
                await db.execute(
                    "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)",
                    (workflow_id, state, record.version, now.isoformat(), json.dumps(merged)),
                )
                await db.commit()
                return record
            except BaseException:
                await db.rollback()
                raise

    async def put(self, workflow_id: str, state: str, data: dict[str, Any]) -> Record:
        """Set the record to ``state`` whatever it was (a contract test's provider state)."""
        async with self._lock:
            db = self._conn
            current = await self._get_in(db, workflow_id)
            now = datetime.now(UTC)
            record = Record(workflow_id, state, (current.version if current else 0) + 1, now, data)
            await db.execute(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)",
                (workflow_id, state, record.version, now.isoformat(), json.dumps(data)),
            )
            await db.commit()
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
        async with self._conn.execute("SELECT COUNT(*) FROM records") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

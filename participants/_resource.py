"""What the participants' runnable resources share: an exit stack, a data directory,
and holding a file alone."""

from __future__ import annotations

import fcntl
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import IO


class InUse(Exception):
    """Another process holds a database or a data directory; the message names it."""


class StackOwned:
    """An async context manager whose resources go on ``self._stack`` as they open;
    leaving it closes them, the last opened first."""

    _stack: AsyncExitStack

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()


def data_dir(stack: AsyncExitStack, kept: Path | None) -> Path:
    """``kept``, made if missing and held by this run until ``stack`` closes (a second
    run on it would start a second broker on the same storage); or, if None, a
    temporary directory removed when ``stack`` closes."""
    if kept is None:
        return Path(stack.enter_context(tempfile.TemporaryDirectory()))
    kept.mkdir(parents=True, exist_ok=True)
    stack.enter_context(hold(kept / ".lock", kept))
    return kept


def hold(lock: Path, what: Path) -> IO[bytes]:
    """``lock``, opened and locked for this process alone until it is closed; InUse
    names ``what`` if another process holds it."""
    held = lock.open("wb")
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.close()
        raise InUse(f"{what} is in use by another process") from None
    return held

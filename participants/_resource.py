"""What the participants' runnable resources share: an exit stack, and a data directory."""

from __future__ import annotations

import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType


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
    """``kept``, made if missing; or, if None, a temporary directory removed when
    ``stack`` closes."""
    if kept is None:
        return Path(stack.enter_context(tempfile.TemporaryDirectory()))
    kept.mkdir(parents=True, exist_ok=True)
    return kept

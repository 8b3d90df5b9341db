"""Watching workflows: one poller per workflow and scope, shared by all its watchers.

The poller asks for the status when its first shown part leaves the cache (or
a duration anomaly falls due), the parts' time to live when nothing is fresh,
so cached parts are never asked for early and N watchers cost what one does.
A watcher is told of an answer only when what it says changes (its validator,
``Rendering.fingerprint``: a part's content, outcome, error or staleness, never
its age). The poller stops when the last watcher leaves, and when the workflow
reaches a final status (``WorkflowDefinition.is_final``): watchers are told
that last answer with ``final`` set, and their iterators end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from ._answer import Answer
from ._errors import NotOpen, TooManyWatchers, WatchFailed
from ._merge import known_state
from ._rules import WorkflowDefinition
from ._stage import Key

AnswerFor = Callable[[Key, Mapping[str, str] | None], Awaitable[Answer]]
_NEVER, _ALWAYS = float("-inf"), float("inf")  # Rendering.renew_at when nothing is fresh
# The shortest wait between polls: a timer may fire up to the event loop's resolution
# early (a millisecond with uvloop), and a part then still fresh is waited for again,
# not in a loop of wake-ups within that millisecond.
_MIN_WAIT = 0.001
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Change:
    """What a watcher is told: an answer that says something new, and whether the
    workflow is over (nothing more will come)."""

    answer: Answer
    final: bool

    @property
    def validator(self) -> str:
        """Equal for answers that say the same (the gateway's ETag is ``W/"<it>"``)."""
        return self.answer.rendering.fingerprint


class _Watch:
    """One workflow's poller and what it last found."""

    __slots__ = ("changed", "closed", "error", "key", "latest", "task", "watchers")

    def __init__(self, key: Key) -> None:
        self.key = key
        self.latest: Change | None = None
        self.error: BaseException | None = None  # why the poller stopped, if it failed
        self.watchers = 0
        self.task: asyncio.Task[None] | None = None
        self.closed = False  # ended by the aggregator closing, the poller run or not
        # Set, and replaced by a new one, at each change and at the end.
        self.changed = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self.closed or (self.task is not None and self.task.done())

    def tell(self, change: Change | None) -> None:
        if change is not None:
            self.latest = change
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class Watches:
    """Every workflow being watched, with the limits on watchers."""

    __slots__ = (
        "_answer",
        "_clock",
        "_definition",
        "_max_per_workflow",
        "_max_total",
        "_sleep",
        "_ttl",
        "_watches",
        "closed",
        "watchers",
    )

    def __init__(
        self,
        answer: AnswerFor,
        definition: WorkflowDefinition,
        *,
        ttl: float,
        clock: Callable[[], float],
        sleep: Sleep,
        max_total: int,
        max_per_workflow: int,
    ) -> None:
        self._answer = answer
        self._definition = definition
        self._ttl = ttl
        self._clock = clock
        self._sleep = sleep
        self._max_total = max_total
        self._max_per_workflow = max_per_workflow
        self._watches: dict[Key, _Watch] = {}
        self.watchers = 0  # watching now, all workflows
        self.closed = False  # set by close(), until the aggregator is opened again

    @property
    def workflows(self) -> int:
        """Workflows being watched now (one poller each)."""
        return len(self._watches)

    async def changes(
        self, key: Key, headers: Mapping[str, str] | None
    ) -> AsyncGenerator[Change, None]:
        """The changes of one workflow's answer, the current one first; ends after a
        final one. ``headers`` go with the calls if this watcher starts the poller.
        Raises TooManyWatchers at once (before waiting for anything) beyond the
        limits; the poller's error, if it fails."""
        watch = self._join(key, headers)
        seen: str | None = None
        try:
            while True:
                change = watch.latest
                if change is not None and (change.final or change.validator != seen):
                    seen = change.validator
                    yield change
                    if change.final:
                        return
                    if watch.latest is not change:
                        continue  # a newer one came while the watcher was busy
                if watch.ended:
                    if watch.error is not None:
                        # One exception per watcher: raising the poller's own in each
                        # would grow its traceback by every watcher's frames.
                        raise WatchFailed(f"the watch of {key[1]!r} failed") from watch.error
                    return
                await watch.changed.wait()
        finally:
            self._leave(watch)

    def _join(self, key: Key, headers: Mapping[str, str] | None) -> _Watch:
        if self.closed:
            raise NotOpen("the aggregator is closing: no new watch starts")
        if self.watchers >= self._max_total:
            raise TooManyWatchers(f"{self._max_total} watchers at once at most")
        watch = self._watches.get(key)
        if watch is not None and watch.watchers >= self._max_per_workflow:
            raise TooManyWatchers(f"{self._max_per_workflow} watchers of one workflow at most")
        if watch is None:
            watch = self._watches[key] = _Watch(key)
            watch.task = asyncio.create_task(self._poll(watch, headers), name=f"watch {key[1]}")
        watch.watchers += 1
        self.watchers += 1
        return watch

    def _leave(self, watch: _Watch) -> None:
        watch.watchers -= 1
        self.watchers -= 1
        if watch.watchers == 0:
            if self._watches.get(watch.key) is watch:
                del self._watches[watch.key]
            if watch.task is not None:
                watch.task.cancel()

    async def _poll(self, watch: _Watch, headers: Mapping[str, str] | None) -> None:
        try:
            while True:
                answer = await self._answer(watch.key, headers)
                final = self._is_final(answer)
                latest = watch.latest
                if latest is None or final or latest.validator != answer.rendering.fingerprint:
                    watch.tell(Change(answer, final))
                if final:
                    break
                await self._sleep(self._until_next(answer))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # told to every watcher, who raises it
            watch.error = exc
        finally:
            if self._watches.get(watch.key) is watch:
                del self._watches[watch.key]  # a new watcher starts a new poller
            # Wakes the watchers once the task is done (``ended``): the event loop
            # runs their continuations after this one.
            asyncio.get_running_loop().call_soon(watch.tell, None)

    def _until_next(self, answer: Answer) -> float:
        """Seconds until the next poll: ``Rendering.renew_at``, or a time to live when
        nothing shown is fresh (stale, tentative, or no part can be kept)."""
        renew_at = answer.rendering.renew_at
        if renew_at in (_NEVER, _ALWAYS):
            return self._ttl
        # From the clock, not the answer's time (rounded to the millisecond): a part
        # that expires within that millisecond is asked for in the next poll, not a
        # time to live later.
        return max(renew_at - self._clock(), _MIN_WAIT)

    def _is_final(self, answer: Answer) -> bool:
        rendering = answer.rendering
        if not rendering.verdict.complete or rendering.stale or rendering.tentative:
            return False
        known = {name: known_state(part) for name, part in rendering.parts.items()}
        return self._definition.is_final(known)

    def close(self) -> None:
        """End every watch: their watchers' iterators end, and no new one starts until
        the aggregator is opened again (it is closing)."""
        self.closed = True
        for watch in list(self._watches.values()):
            watch.closed = True
            if watch.task is not None:
                watch.task.cancel()  # a poller not yet started never runs its finally
            watch.tell(None)
        self._watches.clear()

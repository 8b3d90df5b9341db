"""Run the reference participants on free loopback ports with fast, seeded steps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from participants import Chance, Choreography, ChoreographyConfig

FREE = {"payment": 0, "inventory": 0, "shipping": 0}


@asynccontextmanager
async def choreography(
    seed: int = 11,
    *,
    min_delay: float = 0.002,
    max_delay: float = 0.01,
    db_dir: Path | None = None,
    lost_event_rate: float = 0.0,
    rogue_event_rate: float = 0.0,
    **options: Any,
) -> AsyncIterator[Choreography]:
    chance = Chance(
        seed=seed,
        min_delay=min_delay,
        max_delay=max_delay,
        lost_event_rate=lost_event_rate,
        rogue_event_rate=rogue_event_rate,
    )
    config = ChoreographyConfig(ports=dict(FREE), chance=chance, db_dir=db_dir, **options)
    async with Choreography(config) as run:
        yield run

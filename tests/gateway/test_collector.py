"""The garbage collector as the gateway's own processes set it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from aiohttp import web

from aggregator.gateway import process_app
from aggregator.gateway._collector import tune_collector
from tests.gateway.harness import gateway_settings
from tests.loopback import LoopbackParticipants


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the process's collector back as it was."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector")
def test_a_larger_young_generation_and_start_up_frozen() -> None:
    _, middle, old = gc.get_threshold()
    tune_collector(40_000)
    assert gc.get_threshold() == (40_000, middle, old)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("collector")
def test_zero_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    tune_collector(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("collector")
async def test_the_gateway_process_tunes_it_once_open(
    participants: LoopbackParticipants,
) -> None:
    settings = gateway_settings(participants)
    settings = settings.model_copy(
        update={"gateway": settings.gateway.model_copy(update={"gc_young_threshold": 30_000})}
    )
    runner = web.AppRunner(process_app(settings), handle_signals=False)
    await runner.setup()
    try:
        assert gc.get_threshold()[0] == 30_000
        assert gc.get_freeze_count() > 0
    finally:
        await runner.cleanup()

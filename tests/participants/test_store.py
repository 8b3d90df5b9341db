"""A participant's own database: idempotent changes, guarded transitions, a real file."""

from __future__ import annotations

from pathlib import Path

from participants import Store


async def test_an_event_changes_a_record_once(tmp_path: Path) -> None:
    async with Store(tmp_path / "p.sqlite3") as store:
        first = await store.change("o-1", "pending", event_id="e-1", data={"amount": 5})
        again = await store.change("o-1", "pending", event_id="e-1", data={"amount": 9})
        record = await store.get("o-1")
    assert first is not None and first.version == 1
    assert again is None
    assert record is not None and (record.version, record.data) == (1, {"amount": 5})


async def test_a_change_applies_only_from_the_states_it_names(tmp_path: Path) -> None:
    async with Store(tmp_path / "p.sqlite3") as store:
        await store.change("o-1", "pending")
        skipped = await store.change("o-1", "captured", when=("authorized",))
        moved = await store.change("o-1", "authorized", when=("pending",), data={"x": 1})
        record = await store.get("o-1")
    assert skipped is None
    assert moved is not None and moved.version == 2
    assert record is not None and (record.state, record.data) == ("authorized", {"x": 1})


async def test_state_survives_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "kept.sqlite3"
    async with Store(path) as store:
        await store.change("o-1", "pending", event_id="e-1")
    async with Store(path) as store:
        record = await store.get("o-1")
        duplicate = await store.change("o-1", "pending", event_id="e-1")
        count = await store.count()
    assert record is not None and record.state == "pending"
    assert duplicate is None and count == 1
    assert path.stat().st_size > 0


async def test_an_unknown_workflow_has_no_record(tmp_path: Path) -> None:
    async with Store(tmp_path / "p.sqlite3") as store:
        assert await store.get("nobody") is None

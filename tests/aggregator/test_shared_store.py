"""The shared store's operations against a real Valkey server, and its failure mode."""

from __future__ import annotations

from typing import Any

import pytest

from aggregator._settings import CacheSettings
from aggregator._shared_store import SharedStore, StoreUnavailable, shown_url


def settings(**cache: Any) -> CacheSettings:
    return CacheSettings.model_validate(cache)


async def test_a_lower_version_is_not_kept_and_the_held_one_is_returned(
    valkey_cache: dict[str, Any],
) -> None:
    async with SharedStore(settings(**valkey_cache)) as store:
        part, lease = store.keys("tenant-a", "payment", "o:1")
        assert await store.keep(part, lease, b"5|[]|{}", 5, 60_000, "") is None
        assert await store.keep(part, lease, b"3|[]|{}", 3, 60_000, "") == b"5|[]|{}"
        assert await store.keep(part, lease, b'5|[]|{"again": 1}', 5, 60_000, "") is None
        assert await store.keep(part, lease, b"-1|[]|", -1, 60_000, "") is None  # not found
        assert await store.read(part, lease) == (b"-1|[]|", False)


async def test_a_lease_is_taken_once_and_let_go_only_by_its_holder(
    valkey_cache: dict[str, Any],
) -> None:
    async with SharedStore(settings(**valkey_cache)) as store:
        part, lease = store.keys("", "payment", "o-1")
        assert await store.lease(lease, "mine", 60_000)
        assert not await store.lease(lease, "theirs", 60_000)
        await store.release(lease, "theirs")
        assert (await store.read(part, lease))[1]
        await store.keep(part, lease, b"1|[]|{}", 1, 60_000, "mine")  # kept, and let go
        assert await store.read(part, lease) == (b"1|[]|{}", False)


def test_keys_hold_the_scope_participant_and_id_in_one_slot() -> None:
    store = SharedStore(settings(backend="valkey://127.0.0.1:1/0", prefix="sa"))
    assert store.keys("t:1", "pay ment", "o:1") == (
        "sa:{t%3A1:pay%20ment:o:1}:part",
        "sa:{t%3A1:pay%20ment:o:1}:lease",
    )


async def test_a_failing_store_is_left_alone_then_tried_again(closed_port: int) -> None:
    now = [0.0]
    cache = settings(backend=f"valkey://127.0.0.1:{closed_port}/0", retry_ms=1_000)
    async with SharedStore(cache, now=lambda: now[0]) as store:
        part, lease = store.keys("", "payment", "o-1")
        assert not store.available and store.problem is not None  # failed at start
        tried = store.operations
        with pytest.raises(StoreUnavailable):
            await store.read(part, lease)
        assert store.operations == tried  # left alone: not even tried
        now[0] = 1.0
        assert store.available
        with pytest.raises(StoreUnavailable):
            await store.read(part, lease)
        assert store.operations == tried + 1


def test_the_url_shown_holds_no_credential() -> None:
    assert shown_url("rediss://user@cache.internal:6380/2") == "rediss://cache.internal:6380/2"


@pytest.mark.parametrize(
    ("backend", "said"),
    [
        ("memcached://x", 'is neither "memory" nor a URL'),
        ("valkey://:secret@x:6379/0", "give it in STATUS_AGGREGATOR_CACHE__PASSWORD"),
        ("valkey://x:port/0", "Port could not be cast"),
    ],
)
def test_a_bad_backend_is_refused(backend: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        settings(backend=backend)


PARTICIPANTS = "".join(
    f'[participants.{name}]\nurl = "http://{name}.test/{name}/{{workflow_id}}"\n'
    for name in ("payment", "inventory", "shipping")
)


def test_the_password_comes_from_the_environment_and_is_never_shown() -> None:
    from aggregator import ConfigError, Settings

    text = '[cache]\nbackend = "valkey://cache.internal:6379/0"\n' + PARTICIPANTS
    env = {"STATUS_AGGREGATOR_CACHE__PASSWORD": "hunter2-but-longer"}
    loaded = Settings.from_toml(text, env=env)
    assert loaded.cache.password is not None
    assert loaded.cache.password.get_secret_value() == "hunter2-but-longer"
    assert "hunter2" not in repr(loaded) and "hunter2" not in str(loaded.model_dump())
    with pytest.raises(ConfigError, match=r"cache\.password: give it in the environment"):
        Settings.from_toml(text.replace("/0\"\n", '/0"\npassword = "x"\n', 1))

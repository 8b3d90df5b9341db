"""The shared store's operations against a real Valkey server, and its failure mode."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from aggregator._settings import CacheSettings
from aggregator._shared_store import (
    FRESH,
    MINE,
    THEIRS,
    SharedStore,
    StoreUnavailable,
    shown_url,
)


def settings(**cache: Any) -> CacheSettings:
    return CacheSettings.model_validate(cache)


async def test_a_lower_version_is_not_kept_and_the_held_one_is_returned(
    valkey_cache: dict[str, Any],
) -> None:
    async with SharedStore(settings(**valkey_cache)) as store:
        part, lease = store.keys("tenant-a", "payment", "o:1")
        assert await store.keep(part, lease, b"5|0|[]|{}", b"") == [None]
        assert await store.keep(part, lease, b"3|0|[]|{}", b"") == [b"5|0|[]|{}"]
        assert await store.keep(part, lease, b"5|0|[]|{}", b"") == [None]
        assert await store.keep(part, lease, b"-1|0|[]|", b"") == [None]  # not found
        assert await store.take(part, lease, 0.0, b"mine") == (b"-1|0|[]|", MINE)


async def test_a_fresh_part_is_read_without_a_lease_and_a_lease_is_taken_once(
    valkey_cache: dict[str, Any],
) -> None:
    async with SharedStore(settings(**valkey_cache)) as store:
        part, lease = store.keys("", "payment", "o-1")
        assert await store.take(part, lease, 100.0, b"mine") == (None, MINE)
        assert await store.take(part, lease, 100.0, b"theirs") == (None, THEIRS)
        await store.release(lease, b"theirs")  # not theirs to let go
        assert (await store.take(part, lease, 100.0, b"theirs"))[1] == THEIRS
        # Kept (fresh until 102 s), and the lease let go with it.
        assert await store.keep(part, lease, b"1|102000|[]|{}", b"mine") == [None]
        assert await store.take(part, lease, 101.9, b"next") == (b"1|102000|[]|{}", FRESH)
        assert await store.take(part, lease, 102.0, b"next") == (b"1|102000|[]|{}", MINE)


async def test_what_one_turn_of_the_loop_asks_goes_as_one_call(
    valkey_cache: dict[str, Any],
) -> None:
    async with SharedStore(settings(**valkey_cache)) as store:
        before = store.operations
        pairs = [store.keys("", "payment", f"o-{n}") for n in range(300)]
        taken = await asyncio.gather(
            *(store.take(part, lease, 0.0, b"t%d" % n) for n, (part, lease) in enumerate(pairs))
        )
        assert taken == [(None, MINE)] * 300
        assert store.operations - before == 3  # 128 + 128 + 44 pairs


def test_keys_hold_the_scope_participant_and_id_in_one_slot() -> None:
    store = SharedStore(settings(backend="valkey://127.0.0.1:1/0", prefix="sa"))
    assert store.keys("t:1", "pay ment", "o:1") == (
        b"sa:{t%3A1:pay%20ment:o:1}:part",
        b"sa:{t%3A1:pay%20ment:o:1}:lease",
    )


async def test_a_failing_store_is_left_alone_then_tried_again(closed_port: int) -> None:
    now = [0.0]
    cache = settings(backend=f"valkey://127.0.0.1:{closed_port}/0", retry_ms=1_000)
    async with SharedStore(cache, now=lambda: now[0]) as store:
        part, lease = store.keys("", "payment", "o-1")
        assert not store.available and store.problem is not None  # failed at start
        tried = store.operations
        with pytest.raises(StoreUnavailable):
            await store.take(part, lease, 0.0, b"mine")
        assert store.operations == tried  # left alone: not even tried
        now[0] = 1.0
        assert store.available
        with pytest.raises(StoreUnavailable):
            await store.take(part, lease, 0.0, b"mine")
        assert store.operations == tried + 1


def test_the_url_shown_holds_no_credential() -> None:
    assert shown_url("rediss://user@cache.internal:6380/2") == "rediss://cache.internal:6380/2"


@pytest.mark.parametrize(
    ("backend", "said"),
    [
        ("memcached://u:hunter2@x", 'neither "memory" nor a URL'),
        ("valkey//:hunter2@x:1/0", 'neither "memory" nor a URL'),
        ("valkey://:hunter2@x:6379/0", "give it in STATUS_AGGREGATOR_CACHE__PASSWORD"),
        ("valkey://x:6379/0?password=hunter2", "takes no query or fragment"),
        ("valkey://x:6379/zz", "its path is the database number"),
        ("valkey://x:99999/0", "its port must be a number from 0 to 65535"),
    ],
)
def test_a_bad_backend_is_refused_without_repeating_it(backend: str, said: str) -> None:
    from aggregator import ConfigError, Settings

    text = f'[cache]\nbackend = "{backend}"\n' + PARTICIPANTS
    with pytest.raises(ConfigError, match=re.escape(said)) as refused:
        Settings.from_toml(text)
    assert "hunter2" not in str(refused.value) and backend not in str(refused.value)


def test_a_password_without_a_store_is_refused() -> None:
    from aggregator import ConfigError, Settings

    env = {"STATUS_AGGREGATOR_CACHE__PASSWORD": "hunter2-but-longer"}
    with pytest.raises(ConfigError, match="password is set, but backend is memory"):
        Settings.from_toml(PARTICIPANTS, env=env)


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
        Settings.from_toml(text.replace('/0"\n', '/0"\npassword = "x"\n', 1))

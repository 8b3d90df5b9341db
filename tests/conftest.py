from tests.loopback import closed_port, participants
from tests.valkey import valkey, valkey_cache

__all__ = ["closed_port", "participants", "valkey", "valkey_cache"]

pytest_plugins = ["pytester"]

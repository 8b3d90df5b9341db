from tests.loopback import closed_port, participants

__all__ = ["closed_port", "participants"]

pytest_plugins = ["pytester"]

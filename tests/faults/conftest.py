from pathlib import Path

import pytest

from tests.faults.participant import faulty

__all__ = ["faulty"]

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.faults)

"""The README's examples run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_embedding_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "embedding.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[-6:] == [
        "order-1: in_transit (complete: True)",
        "order-2: compensated (complete: True)",
        "order-3: payment_pending (complete: True)",
        "order-4: unknown (complete: True)",
        "watching order-1: in_transit",
        "watching order-1: delivered",
    ]

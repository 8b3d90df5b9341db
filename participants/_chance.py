"""Seeded decisions: what happens to each order, and how long each step takes.

Every decision is drawn from a random source seeded with the run's seed, the
workflow id and the step, so it does not depend on timing or on the order in
which events arrive: a run is reproducible, and a test can ask what the seed
decided.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chance:
    """The run's seeded choices.

    >>> Chance(seed=7).payment_fails("order-1") == Chance(seed=7).payment_fails("order-1")
    True
    """

    seed: int = 0
    payment_failure_rate: float = 0.1
    out_of_stock_rate: float = 0.1
    min_delay: float = 0.5
    max_delay: float = 2.5

    def _draw(self, workflow_id: str, step: str) -> random.Random:
        return random.Random(f"{self.seed}:{workflow_id}:{step}")

    def payment_fails(self, workflow_id: str) -> bool:
        return self._draw(workflow_id, "payment").random() < self.payment_failure_rate

    def out_of_stock(self, workflow_id: str) -> bool:
        return self._draw(workflow_id, "stock").random() < self.out_of_stock_rate

    def delay(self, workflow_id: str, step: str) -> float:
        """Seconds the step takes."""
        return self._draw(workflow_id, f"delay:{step}").uniform(self.min_delay, self.max_delay)

    def expected_outcome(self, workflow_id: str) -> str:
        """The terminal workflow status this seed leads the order to."""
        if self.payment_fails(workflow_id):
            return "payment_failed"
        if self.out_of_stock(workflow_id):
            return "compensated"
        return "delivered"

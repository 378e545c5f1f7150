"""What the embedded store keeps so an erasure can take one customer out of campaign answers exactly.

A campaign's partial per (offset block, hour) folds the events of many customers; an aggregate cannot
be un-merged in general (a min, a max or a distinct set forgets whose value it holds). So beside it the
store keeps each customer's own campaign partial per (campaign, block, hour) cell, and which customers
touched each cell. Erasing a customer re-folds the cells it touched from the *other* customers'
partials — a monoid fold, exact for every aggregate kind — instead of subtracting.

Memory: one partial per (customer, campaign, block, hour) cell the customer has events in, dropped
with its block like every other partial (``prune``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from lambdalytics.schemas.views import Watermark, at_or_above

__all__ = ["CampaignContributions"]

Block = tuple[str, int, int]  # (topic, partition, block number)
Cell = tuple[str, Block, int]  # (campaign, block, hour)
Partial = dict[str, Any]


class CampaignContributions:
    """Per (tenant, customer): its campaign partial per cell; per (tenant, cell): the customers in it."""

    def __init__(self) -> None:
        self._by_customer: dict[tuple[str, str], dict[Cell, Partial]] = {}
        self._customers: dict[tuple[str, Cell], set[str]] = defaultdict(set)

    def partial(self, tenant: str, customer: str, cell: Cell, empty: Callable[[], Partial]) -> Partial:
        """The customer's partial of ``cell``, created empty: the store updates it with each event."""
        self._customers[(tenant, cell)].add(customer)
        return self._by_customer.setdefault((tenant, customer), {}).setdefault(cell, empty())

    def take(self, tenant: str, customer: str) -> list[Cell]:
        """Forget the customer; the cells it had events in (to be re-folded from the others)."""
        cells = list(self._by_customer.pop((tenant, customer), {}))
        for cell in cells:
            held = self._customers.get((tenant, cell))
            if held is not None:
                held.discard(customer)
                if not held:
                    del self._customers[(tenant, cell)]
        return cells

    def others(self, tenant: str, cell: Cell) -> list[Partial]:
        """The partials of every customer still holding events in ``cell``."""
        return [self._by_customer[(tenant, c)][cell] for c in self._customers.get((tenant, cell), ())]

    def prune(self, floor: Watermark, block_size: int) -> None:
        """Drop the cells of blocks the batch view now covers, as the store drops its own partials."""

        def kept(cell: Cell) -> bool:
            topic, partition, block = cell[1]
            return at_or_above(block, floor.get((topic, partition), 0), block_size)

        by_customer = {}
        for key, cells in self._by_customer.items():
            if held := {cell: p for cell, p in cells.items() if kept(cell)}:
                by_customer[key] = held
        self._by_customer = by_customer
        self._customers = defaultdict(
            set, {(t, cell): cs for (t, cell), cs in self._customers.items() if kept(cell)}
        )

    def __len__(self) -> int:
        return sum(len(cells) for cells in self._by_customer.values())

"""Speed-side trait state: per customer and offset block, the latest value of each trait set there,
and per tenant and block, the customers with any event there (whom segments must correct).

Kept beside the embedded store (``speed.embedded`` feeds it from ``ingest`` and prunes it with its
floor) so the store's own layout stays its own. Values fold with ``schemas.aggregates.latest``, the one
definition batch (``compile.SparkSql.latest``) and serving use; :func:`fold_identify` is how one
``identify`` row becomes trait states, for this store and for Pinot's rows alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from lambdalytics.schemas import aggregates
from lambdalytics.schemas.aggregates import Latest
from lambdalytics.schemas.traits import value_text
from lambdalytics.schemas.views import Watermark, at_or_above

__all__ = ["TraitStates", "fold_identify"]

Block = tuple[str, int, int]


def fold_identify(states: dict[str, Latest], event_time: int, offset: int, traits: str | None) -> None:
    """Fold one identify row's traits (the row's JSON text) into ``states`` in place."""
    for name, value in (orjson.loads(traits) if traits else {}).items():
        states[name] = aggregates.latest(states.get(name), (event_time, offset, value_text(value)))


class TraitStates:
    """Not thread-safe by itself: the embedded store calls it under its lock."""

    def __init__(self, block_size: int):
        self.block_size = block_size
        self._latest: dict[tuple[str, str], dict[Block, dict[str, Latest]]] = {}
        self._touched: dict[str, dict[Block, set[str]]] = {}

    def apply(self, row: Mapping[str, Any], block: Block, offset: int) -> None:
        tenant, customer = row["tenant_id"], row["customer_id"]
        by_block = self._touched.get(tenant)
        if by_block is None:
            by_block = self._touched[tenant] = {}
        touched = by_block.get(block)
        if touched is None:
            touched = by_block[block] = set()
        touched.add(customer)
        if row["event_type"] == "identify" and row.get("traits"):
            states = self._latest.setdefault((tenant, customer), {}).setdefault(block, {})
            fold_identify(states, row["event_time"], offset, row["traits"])

    def prune(self, floor: Watermark) -> None:
        """Forget the blocks wholly below the floor (the batch view covers them)."""
        keep = self._keeper(floor)
        self._latest = {k: kept for k, blocks in self._latest.items() if (kept := _kept(blocks, keep))}
        self._touched = {t: kept for t, blocks in self._touched.items() if (kept := _kept(blocks, keep))}

    def forget(self, tenant: str, customers: set[str]) -> int:
        """Drop these customers' trait states and touches (an erasure); the number of blocks dropped."""
        removed = sum(len(self._latest.pop((tenant, c), {})) for c in customers)
        for touched in self._touched.get(tenant, {}).values():
            touched -= customers
        return removed

    def customer(self, tenant: str, customer: str, watermark: Watermark) -> dict[str, Latest]:
        wanted = self._keeper(watermark)
        blocks = self._latest.get((tenant, customer), {})
        return aggregates.merge_latest(*(s for b, s in blocks.items() if wanted(b)))

    def touched(self, tenant: str, watermark: Watermark) -> set[str]:
        wanted = self._keeper(watermark)
        return {c for b, customers in self._touched.get(tenant, {}).items() if wanted(b) for c in customers}

    def _keeper(self, watermark: Watermark) -> Callable[[Block], bool]:
        b = self.block_size
        return lambda block: at_or_above(block[2], watermark.get((block[0], block[1]), 0), b)


def _kept(blocks: dict[Block, Any], keep: Callable[[Block], bool]) -> dict[Block, Any]:
    return {b: v for b, v in blocks.items() if keep(b)}

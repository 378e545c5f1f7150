"""The alias edges the embedded speed store holds above W, per offset block like every other state.

An ``alias`` event is folded here (by the store's one hook in ``_aggregate``, after its dedup) and
dropped with its block once a batch version covers it: the batch's ``alias_edges`` view holds it from
then on. Reads return the edges naming given ids in the blocks at or above W, so serving walks a
customer's identity component across both sides (``schemas.identity.component_of``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lambdalytics.schemas.identity import Alias

__all__ = ["ALIAS_EVENT", "AliasEdges", "alias_of"]

ALIAS_EVENT = "alias"
Block = tuple[str, int, int]


def alias_of(row: dict[str, Any]) -> Alias | None:
    """The alias edge of an event row (``to_row``), or None for every other event."""
    if row["event_type"] != ALIAS_EVENT or row.get("previous_id") is None:
        return None
    return Alias(row["event_time"], row["event_id"], row["previous_id"], row["customer_id"])


class AliasEdges:
    """(tenant, id) → the edges naming it, each with the block it came in. Not thread-safe: the store's
    lock guards it."""

    def __init__(self) -> None:
        self._by_tenant: dict[str, dict[str, dict[Alias, Block]]] = {}

    def add(self, tenant: str, edge: Alias, block: Block) -> None:
        by_id = self._by_tenant.setdefault(tenant, {})
        for customer in edge.ids:
            by_id.setdefault(customer, {})[edge] = block

    def edges(
        self, tenant: str, customers: Iterable[str] | None, wanted: Callable[[Block], bool]
    ) -> set[Alias]:
        """The edges in wanted blocks naming one of ``customers`` (None: every edge of the tenant)."""
        by_id = self._by_tenant.get(tenant, {})
        held = by_id.values() if customers is None else (by_id.get(c, {}) for c in customers)
        return {edge for edges in held for edge, block in edges.items() if wanted(block)}

    def keep(self, held: Callable[[Block], bool]) -> None:
        """Forget the edges of blocks no longer held (below the new floor)."""
        kept: dict[str, dict[str, dict[Alias, Block]]] = {}
        for tenant, by_id in self._by_tenant.items():
            for customer, edges in by_id.items():
                if remaining := {e: b for e, b in edges.items() if held(b)}:
                    kept.setdefault(tenant, {})[customer] = remaining
        self._by_tenant = kept

    def forget(self, tenant: str, customers: set[str]) -> int:
        """Drop the alias events of these ids (an erasure): the edges they survive, as the master's delete
        drops those rows (an alias is an event of its survivor); the number dropped."""
        by_id = self._by_tenant.get(tenant, {})
        gone = {e for c in customers for e in by_id.get(c, {}) if e.customer_id in customers}
        for customer in {i for e in gone for i in e.ids}:
            edges = by_id.get(customer, {})
            for edge in gone & edges.keys():
                del edges[edge]
            if not edges:
                by_id.pop(customer, None)
        return len(gone)

    def __len__(self) -> int:
        return len({e for by_id in self._by_tenant.values() for edges in by_id.values() for e in edges})

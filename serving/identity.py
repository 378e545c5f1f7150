"""Identity components on one (batch index, W) snapshot: the alias edges below W (the batch's
``alias_edges``, in the serving store) together with those at or above W (the speed store).

Both sides hold disjoint sets of alias events (the cut is by offset), so their union is every alias
acknowledged, and ``schemas.identity`` turns it into the same components the batch would compute over
all of them. ``serving.merge`` uses these to merge a component's aggregates; other code (erasure) calls
``Merger.component_ids``.
"""

from __future__ import annotations

from collections.abc import Iterable

from lambdalytics.schemas.identity import Alias, Component, component_of
from lambdalytics.speed.store import SpeedStore

from .index import BatchIndex

__all__ = ["IdentityGraph"]


class IdentityGraph:
    """One tenant's alias edges on one snapshot. ``speed_edges`` preloads every speed-side edge of the
    tenant (one read instead of one per layer: for tenant-level answers that walk many ids)."""

    def __init__(self, ix: BatchIndex, speed: SpeedStore, tenant: str, *, preload: bool = False):
        self.ix, self.speed, self.tenant = ix, speed, tenant
        self._speed: dict[str, set[Alias]] | None = None
        if preload:
            self._speed = {}
            for edge in speed.alias_edges(tenant, None, ix.watermark):
                for i in edge.ids:
                    self._speed.setdefault(i, set()).add(edge)

    def batch_edges(self, ids: Iterable[str]) -> set[Alias]:
        return self.ix.alias_edges(self.tenant, ids)

    def edges(self, ids: Iterable[str]) -> set[Alias]:
        ids = list(ids)
        if self._speed is None:
            speed = self.speed.alias_edges(self.tenant, ids, self.ix.watermark)
        else:
            speed = {e for i in ids for e in self._speed.get(i, ())}
        return self.batch_edges(ids) | speed

    def component(self, customer: str) -> Component:
        """The merged customer ``customer`` belongs to, both sides of W."""
        return component_of(customer, self.edges)

    def batch_component(self, customer: str) -> Component:
        """The component the batch version counted ``customer`` in (its edges below W only)."""
        return component_of(customer, self.batch_edges)

    def speed_ids(self) -> set[str]:
        """Every id a speed-side alias names (preloaded graphs only)."""
        assert self._speed is not None, "speed_ids needs preload=True"
        return set(self._speed)

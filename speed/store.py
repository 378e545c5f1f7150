"""The speed-store interface: partial aggregates over the events *after* the batch watermark W.

Two implementations answer it identically: the embedded store (``speed.embedded``, default, in
process) and Apache Pinot (``speed.pinot``). Every answer is for exactly the events with
``offset >= W[topic, partition]``, deduplicated by ``(tenant_id, event_id)``; serving merges it with the
batch view cut at the same W. A store that cannot answer for that W raises :class:`CoverageError`
(it never returns a smaller number), and serving turns that into a 503 — fail closed. Serving tells the
store when a batch version is published (:meth:`SpeedStore.on_batch_published`) and knows no more of it.

Each store has one config (``speed.config``, a union told apart by ``type``) and is opened one way,
``speed.factory.open_store(config)``.

Partials are raw mergeable states (``schemas.aggregates``): per base metric name a value, per entity
the milestone times. Hours and months are epoch-ms hour starts and months since 1970-01.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lambdalytics.schemas.catalog import CATALOG, Catalog
from lambdalytics.schemas.identity import Alias
from lambdalytics.schemas.views import Gap, Watermark

Partial = dict[str, Any]  # base metric name -> raw state
Milestones = dict[str, int | None]  # milestone name -> first time (epoch ms)

__all__ = ["CoverageError", "Gap", "Milestones", "Partial", "SpeedStatus", "SpeedStore", "Watermark"]


class CoverageError(RuntimeError):
    """The store does not hold every event at or above the watermark asked for."""


@dataclass(frozen=True)
class SpeedStatus:
    lag_ms: int  # how far behind the broker the store may be (0 = caught up at the last poll)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset per partition
    events: int = 0  # events aggregated (after dedup), all time
    duplicates: int = 0  # copies not counted: another copy is counted (here or by the batch view)
    caught_up: bool = False  # every partition's position reached the broker's high-water mark
    high_water: dict[tuple[str, int], int] = field(default_factory=dict)  # from the last fetch responses
    unassigned: tuple[tuple[str, int], ...] = ()  # partitions known from metadata, not consumed yet
    gaps: tuple[Gap, ...] = ()  # lost ranges no batch version covers yet: reads below their end fail
    lost_offsets: int = 0  # offsets ever jumped over by a lost position, all time (a counter)


class SpeedStore(ABC):
    """What both speed stores answer. ``tenant`` is a required argument of every read."""

    reads_block: ClassVar[bool] = False
    """True when a read waits on the network (Pinot): serving then runs reads off the event loop."""

    erase_deletes: ClassVar[bool] = True
    """False when :meth:`erase` cannot delete what the store holds and leaves it out of every answer
    instead (Pinot: the rows stay until its retention); the erasure receipt says which."""

    catalog: Catalog = CATALOG
    """The metrics this store aggregates for every event it consumes: the built-in catalog, plus the
    registered metrics of its data folder for a store opened with them (the embedded store)."""

    @abstractmethod
    def customer(self, tenant: str, customer: str, watermark: Watermark) -> Partial:
        """Customer-grain base states of one customer (empty states when no event)."""

    @abstractmethod
    def customer_entities(
        self, tenant: str, customer: str, entity: str, watermark: Watermark
    ) -> dict[str, Milestones]:
        """Milestones of the customer's entities (ticket or order id -> milestones) seen after W."""

    @abstractmethod
    def customer_hours(
        self, tenant: str, customer: str, watermark: Watermark, start_ms: int, end_ms: int
    ) -> dict[int, Partial]:
        """Time-series base states per event-time hour in [start_ms, end_ms)."""

    @abstractmethod
    def campaign_hours(
        self, tenant: str, campaign: str, watermark: Watermark, start_ms: int, end_ms: int
    ) -> dict[int, Partial]:
        """Campaign-grain base states per event-time hour in [start_ms, end_ms)."""

    @abstractmethod
    def tenant_entities(
        self, tenant: str, entity: str, watermark: Watermark
    ) -> dict[tuple[str, str], Milestones]:
        """All entities of the tenant seen after W: (customer, id) -> milestones (live order metrics)."""

    @abstractmethod
    def order_months(self, tenant: str, watermark: Watermark) -> dict[str, set[int]]:
        """Per customer, the months with an order_placed after W (cohorts)."""

    @abstractmethod
    def alias_edges(self, tenant: str, customers: Iterable[str] | None, watermark: Watermark) -> set[Alias]:
        """The alias edges after W naming one of these ids (None: all of the tenant's; ``schemas.identity``)."""

    @abstractmethod
    def customer_traits(
        self, tenant: str, customer: str, watermark: Watermark
    ) -> dict[str, tuple[int, int, str]]:
        """The customer's latest trait states after W: trait -> (event_time, offset, value text)."""

    @abstractmethod
    def touched_customers(self, tenant: str, watermark: Watermark) -> set[str]:
        """The tenant's customers with any event after W (the ones segments correct)."""

    @abstractmethod
    def status(self) -> SpeedStatus: ...

    def lag_ms(self) -> int:
        """``status().lag_ms`` alone: what every answer's freshness carries (a store may make it cheaper)."""
        return self.status().lag_ms

    @abstractmethod
    def on_batch_published(self, watermark: Watermark, *, block_size: int | None = None) -> None:
        """Serving now answers from a batch version cut at ``watermark`` with block size ``block_size``
        (the manifest's B; None for a manifest written before B was recorded).

        Called by the loader only *after* the new version is swapped in, so no read still needs what the
        store may now forget. A store with nothing to free does nothing; afterwards a read for an older W
        may raise :class:`CoverageError`, never answer less — nor may a read at a W whose blocks the store
        cannot split the way the batch did.
        """

    @abstractmethod
    def erase(self, tenant: str, customers: Iterable[str]) -> int:
        """Forget every event of ``customers`` (one identity component of ``tenant``): an erasure.

        Afterwards no read answers anything of theirs, and tenant-level reads (campaigns, live entities,
        order months) equal a store that never held their events. Idempotent; returns how many partials
        (or rows) it removed. The consumer keeps their later events out (``infra.erasures``).
        """

    def customer_version(self, tenant: str, customer: str) -> object | None:
        """A token that changes whenever ``customer``/``customer_entities`` could answer differently
        for this customer (an event of theirs applied, coverage changed). ``None``: this store cannot
        tell, and callers must not cache its answers (Pinot)."""
        return None

    def tenant_version(self, tenant: str) -> object | None:
        """A token that changes whenever a tenant-level read (``campaign_hours``, ``tenant_entities``,
        ``order_months``, ``alias_edges``, ...) could answer differently for ``tenant``: one of its events
        applied, one of its customers erased, coverage changed. ``None``: do not cache (Pinot)."""
        return None

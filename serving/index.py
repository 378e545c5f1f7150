"""A batch view version as serving reads it: its manifest (W) and its memory-mapped serving store.

Opened completely before serving swaps to it (``serving.loader``), so a request sees one version or the
other, never a mix. Every lookup takes the tenant as part of the key. The data lives in the version's
``infra.serving_store`` file, shared by every worker through the page cache; this object holds only the
open map, so a swap costs the same for any number of customers. A version whose store file is missing
(or of another layout) gets it rebuilt from its Delta views, the system of record.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from lambdalytics.batch.writer import Manifest
from lambdalytics.infra.serving_store import ServingStore, StoreBroken, build, store_path
from lambdalytics.schemas.cohorts import CohortCounts
from lambdalytics.schemas.identity import Alias
from lambdalytics.schemas.registered import REGISTERED_PROFILE
from lambdalytics.schemas.views import Watermark

__all__ = ["BatchIndex"]

log = logging.getLogger(__name__)

Milestones = dict[str, int | None]


class BatchIndex:
    """One version's reads; before the first batch run (no store) every read finds nothing."""

    def __init__(self, manifest: Manifest | None, store: ServingStore | None = None):
        self.manifest = manifest
        self.store = store

    @property
    def watermark(self) -> Watermark:
        return self.manifest.watermark if self.manifest else {}

    @property
    def registered(self) -> frozenset[str]:
        """The registered metrics this version holds (backfilled into its registered profile view)."""
        view = self.store.registered.get(REGISTERED_PROFILE) if self.store else None
        return frozenset(view.values) if view else frozenset()

    @property
    def version(self) -> int:
        return self.manifest.batch_version if self.manifest else 0

    @classmethod
    def empty(cls) -> BatchIndex:
        """Before the first batch run: W = 0 everywhere, the speed side answers for everything."""
        return cls(manifest=None)

    @classmethod
    def load(cls, data_dir: Path, manifest: Manifest) -> BatchIndex:
        """Opens the version's store, building it from the version's Delta views when it is missing (a
        version published before a view existed fails to build, and the loader keeps the one it has)."""
        path = store_path(data_dir, manifest.batch_version)
        if path.exists():
            try:  # a file of another layout, or not LMDB at all, is rebuilt
                return cls(manifest, ServingStore.open(path))
            except StoreBroken as exc:
                log.warning("%s: rebuilding it from the Delta views", exc)
        tables = {name: manifest.table(data_dir, name).to_pyarrow_table() for name in manifest.views}
        return cls(manifest, ServingStore.open(build(path, tables)))

    @classmethod
    def of_tables(
        cls, manifest: Manifest | None, tables: dict[str, pa.Table], *, now_ms: int | None = None
    ) -> BatchIndex:
        """The index of one view version's tables (by view name), in a private temporary store."""
        folder = tempfile.mkdtemp(prefix="serving-store-")
        index = cls(manifest, ServingStore(build(Path(folder) / "store.lmdb", tables, now_ms=now_ms)))
        weakref.finalize(index, shutil.rmtree, folder, ignore_errors=True)
        return index

    # ------------------------------------------------------------------ reads (tenant first)

    def profile(self, tenant: str, customer: str) -> dict[str, Any] | None:
        return self.store.profile(tenant, customer) if self.store else None

    def customers(self) -> Iterator[tuple[str, str]]:
        """Every (tenant, customer) of the version (reports and benchmarks; never a request)."""
        return self.store.customers() if self.store else iter(())

    def customer_hours(self, tenant: str, customer: str, start_ms: int, end_ms: int) -> dict[int, dict]:
        return self.store.customer_hours(tenant, customer, start_ms, end_ms) if self.store else {}

    def campaign_hours(self, tenant: str, campaign: str, start_ms: int, end_ms: int) -> dict[int, dict]:
        return self.store.campaign_hours(tenant, campaign, start_ms, end_ms) if self.store else {}

    def has_campaign(self, tenant: str, campaign: str) -> bool:
        return self.store.has_campaign(tenant, campaign) if self.store else False

    def customer_entities(self, entity: str, tenant: str, customer: str) -> dict[str, Milestones]:
        return self.store.customer_entities(entity, tenant, customer) if self.store else {}

    def entity_state(self, entity: str, tenant: str, customer: str, entity_id: str) -> Milestones | None:
        return self.store.entity_state(entity, tenant, customer, entity_id) if self.store else None

    def entity_states(
        self, entity: str, tenant: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Milestones]:
        """The batch states of these (customer, id) entities; absent ones are not in the batch."""
        return self.store.entity_states(entity, tenant, keys) if self.store else {}

    def alias_edges(self, tenant: str, customers: Iterable[str]) -> set[Alias]:
        """The alias edges below W naming one of these ids."""
        return self.store.alias_edges(tenant, customers) if self.store else set()

    def order_months_of(self, tenant: str, customers: Iterable[str]) -> dict[str, frozenset[int]]:
        """The batch order months of these customers; absent ones had no order below W."""
        return self.store.order_months_of(tenant, customers) if self.store else {}

    def entities_in_window(
        self, entity: str, tenant: str, start_ms: int, end_ms: int
    ) -> dict[tuple[str, str], Milestones]:
        """Every batch entity with a windowed milestone in [start_ms, end_ms] (more may be returned):
        from the time index when the window lies above its horizon, else the tenant's every entity."""
        if self.store is None:
            return {}
        found = self.store.entities_in_window(entity, tenant, start_ms, end_ms)
        return self.store.tenant_entities(entity, tenant) if found is None else found

    def order_months(self, tenant: str, customer: str) -> frozenset[int]:
        return self.store.order_months(tenant, customer) if self.store else frozenset()

    def cohorts(self, tenant: str) -> CohortCounts:
        return self.store.cohorts(tenant) if self.store else CohortCounts()

    def rfm_cuts(self, tenant: str) -> dict[str, list[float]] | None:
        return self.store.rfm_cuts(tenant) if self.store else None

    def customer_traits(self, tenant: str, customers: Iterable[str]) -> dict[str, dict[str, tuple]]:
        """The batch latest-trait states of these customers; absent ones set no trait below W."""
        return self.store.customer_traits(tenant, customers) if self.store else {}

    def segments(self, tenant: str, by: str) -> dict[str, dict[str, Any]]:
        return self.store.segments(tenant, by) if self.store else {}

    def segment_members(
        self, tenant: str, by: str, segment: str, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        return self.store.segment_members(tenant, by, segment, after=after, limit=limit) if self.store else []

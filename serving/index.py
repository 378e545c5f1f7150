"""A batch view version loaded into read-optimised in-memory dicts, keyed by tenant first.

Built completely before serving swaps to it (``serving.loader``), so a request sees one version or the
other, never a mix. Every lookup takes the tenant as part of the key. Which views exist and what their
columns are is the batch ⇄ serving contract in ``schemas.views``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from lambdalytics.batch.writer import Manifest
from lambdalytics.schemas.catalog import CATALOG
from lambdalytics.schemas.cohorts import CohortCounts
from lambdalytics.schemas.views import (
    CAMPAIGN_STATS,
    COHORT_COUNTS,
    CUSTOMER_PROFILE,
    CUSTOMER_TIMESERIES,
    ORDER_MONTHS,
    RFM_CUTS,
    RFM_THRESHOLDS,
    VIEWS,
    View,
    Watermark,
    entity_state,
)

__all__ = ["BatchIndex"]

Key = tuple[str, str]


@dataclass
class BatchIndex:
    manifest: Manifest | None
    profiles: dict[Key, dict[str, Any]] = field(default_factory=dict)
    customer_hours: dict[Key, dict[int, dict[str, Any]]] = field(default_factory=dict)
    campaign_hours: dict[Key, dict[int, dict[str, Any]]] = field(default_factory=dict)
    entities: dict[str, dict[Key, dict[str, dict[str, int | None]]]] = field(default_factory=dict)
    tenant_entities: dict[str, dict[str, dict[tuple[str, str], dict[str, int | None]]]] = field(
        default_factory=dict
    )
    order_months: dict[str, dict[str, frozenset[int]]] = field(default_factory=dict)
    cohorts: dict[str, CohortCounts] = field(default_factory=dict)
    rfm_cuts: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def watermark(self) -> Watermark:
        return self.manifest.watermark if self.manifest else {}

    @property
    def version(self) -> int:
        return self.manifest.batch_version if self.manifest else 0

    @classmethod
    def empty(cls) -> BatchIndex:
        """Before the first batch run: W = 0 everywhere, the speed side answers for everything."""
        return cls(
            manifest=None,
            entities={e.name: {} for e in CATALOG.entities},
            tenant_entities={e.name: {} for e in CATALOG.entities},
        )

    @classmethod
    def load(cls, data_dir: Path, manifest: Manifest) -> BatchIndex:
        """Reads every view of the contract at the version the manifest names (a version published
        before a view existed fails to load, and the loader keeps serving the one it has)."""
        return cls.of_tables(
            manifest, {name: manifest.table(data_dir, name).to_pyarrow_table() for name in VIEWS}
        )

    @classmethod
    def of_tables(cls, manifest: Manifest | None, tables: dict[str, pa.Table]) -> BatchIndex:
        """The index of one view version's tables (by view name)."""

        def rows(view: View) -> list[dict[str, Any]]:
            return tables[view.name].select(list(view.columns)).to_pylist()

        def key(r: dict[str, Any], view: View) -> tuple:
            return tuple(r[k] for k in view.keys)

        index = cls.empty()
        index.manifest = manifest
        for r in rows(CUSTOMER_PROFILE):
            index.profiles[key(r, CUSTOMER_PROFILE)] = {n: r[n] for n in CUSTOMER_PROFILE.values}
        for r in rows(CUSTOMER_TIMESERIES):
            *customer, hour = key(r, CUSTOMER_TIMESERIES)
            index.customer_hours.setdefault(tuple(customer), {})[hour] = {
                n: r[n] for n in CUSTOMER_TIMESERIES.values
            }
        for r in rows(CAMPAIGN_STATS):
            *campaign, hour = key(r, CAMPAIGN_STATS)
            index.campaign_hours.setdefault(tuple(campaign), {})[hour] = {
                n: r[n] for n in CAMPAIGN_STATS.values
            }
        for entity in CATALOG.entities:
            view = entity_state(entity)
            for r in rows(view):
                tenant, customer, entity_id = key(r, view)
                state = {n: r[n] for n in view.values}
                index.entities[entity.name].setdefault((tenant, customer), {})[entity_id] = state
                index.tenant_entities[entity.name].setdefault(tenant, {})[(customer, entity_id)] = state
        months_column = ORDER_MONTHS.values[-1]
        for r in rows(ORDER_MONTHS):
            tenant, customer = key(r, ORDER_MONTHS)
            index.order_months.setdefault(tenant, {})[customer] = frozenset(r[months_column])
        per_tenant: dict[str, list[tuple[int, int, list[int]]]] = {}
        for r in rows(COHORT_COUNTS):
            tenant, cohort = key(r, COHORT_COUNTS)
            per_tenant.setdefault(tenant, []).append((cohort, *(r[n] for n in COHORT_COUNTS.values)))
        index.cohorts = {tenant: CohortCounts.from_rows(rs) for tenant, rs in per_tenant.items()}
        for r in rows(RFM_THRESHOLDS):
            (tenant,) = key(r, RFM_THRESHOLDS)
            index.rfm_cuts[tenant] = {d: r[column] for d, column in RFM_CUTS.items()}
        return index

"""A batch view version loaded into read-optimised in-memory dicts, keyed by tenant first.

Built completely before serving swaps to it (``serving.loader``), so a request sees one version or the
other, never a mix. Every lookup takes the tenant as part of the key.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdalytics.batch.writer import Manifest
from lambdalytics.schemas.catalog import CATALOG, Grain
from lambdalytics.schemas.cohorts import COHORT_METRIC, month_index

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
    order_months: dict[str, dict[str, set[int]]] = field(default_factory=dict)
    rfm_cuts: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def watermark(self) -> dict[tuple[str, int], int]:
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
        def rows(name: str) -> list[dict[str, Any]]:
            return manifest.table(data_dir, name).to_pyarrow_table().to_pylist()

        index = cls.empty()
        index.manifest = manifest
        base_names = [m.name for m in CATALOG.bases(Grain.customer)]
        for r in rows("customer_profile"):
            index.profiles[(r["tenant_id"], r["customer_id"])] = {n: r[n] for n in base_names}
        series_names = [m.name for m in CATALOG.bases(Grain.customer) if m.timeseries]
        months: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        for r in rows("customer_timeseries"):
            key = (r["tenant_id"], r["customer_id"])
            index.customer_hours.setdefault(key, {})[r["hour"]] = {n: r[n] for n in series_names}
            if r[COHORT_METRIC]:
                months[r["tenant_id"]][r["customer_id"]].add(month_index(r["hour"]))
        index.order_months = {t: dict(c) for t, c in months.items()}
        campaign_names = [m.name for m in CATALOG.bases(Grain.campaign)]
        for r in rows("campaign_stats"):
            index.campaign_hours.setdefault((r["tenant_id"], r["campaign_id"]), {})[r["hour"]] = {
                n: r[n] for n in campaign_names
            }
        for entity in CATALOG.entities:
            names = [ms.name for ms in entity.milestones]
            for r in rows(f"{entity.name}_state"):
                state = {n: r[n] for n in names}
                key = (r["tenant_id"], r["customer_id"])
                index.entities[entity.name].setdefault(key, {})[r[entity.id_column]] = state
                index.tenant_entities[entity.name].setdefault(r["tenant_id"], {})[
                    (r["customer_id"], r[entity.id_column])
                ] = state
        for r in rows("rfm_thresholds"):
            index.rfm_cuts[r["tenant_id"]] = {k: r[f"{k}_cuts"] for k in ("r", "f", "m")}
        return index

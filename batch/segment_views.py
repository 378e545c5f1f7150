"""The segment views (``schemas.views.SEGMENT_STATS``, ``SEGMENT_MEMBERS``) from the per-customer views.

Every customer of the version is put in its segment of every segmentation with the one definition,
``schemas.segments.segment_of``, over its batch state — the state serving takes out again when the
speed side touched the customer. Like the cohort views, the inputs are per-customer Arrow tables
collected on the driver (customers × a few columns).
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

from lambdalytics.schemas import aggregates
from lambdalytics.schemas.catalog import CATALOG, Aggregate, Grain
from lambdalytics.schemas.segments import SEGMENT_BASES, SEGMENTATIONS, segment_of
from lambdalytics.schemas.views import (
    CUSTOMER_KEYS,
    CUSTOMER_PROFILE,
    CUSTOMER_TRAITS,
    ORDER_MONTHS,
    RFM_CUTS,
    RFM_THRESHOLDS,
    SEGMENT_MEMBERS,
    SEGMENT_STATS,
)

__all__ = ["segment_views"]

_TYPES = {Aggregate.hll_distinct: pa.binary()}
STATS_SCHEMA = pa.schema(
    [(k, pa.string()) for k in SEGMENT_STATS.keys]
    + [("customers", pa.int64())]
    + [(m.name, _TYPES.get(m.aggregate, pa.int64())) for m in SEGMENT_BASES]
)
MEMBERS_SCHEMA = pa.schema([(k, pa.string()) for k in SEGMENT_MEMBERS.keys])


def _rows(table: pa.Table, columns) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def segment_views(tables: dict[str, pa.Table]) -> tuple[pa.Table, pa.Table]:
    """(segment stats, segment members) of the version whose event and RFM views are ``tables``."""
    traits: dict[tuple[str, str], dict] = defaultdict(dict)
    for tenant, customer, trait, t, offset, value in _rows(
        tables[CUSTOMER_TRAITS.name], CUSTOMER_TRAITS.columns
    ):
        traits[(tenant, customer)][trait] = (t, offset, value)
    first = {(t, c): m for t, c, m in _rows(tables[ORDER_MONTHS.name], (*CUSTOMER_KEYS, "first_month"))}
    cuts = {
        row[0]: dict(zip(RFM_CUTS, row[2:], strict=True))
        for row in _rows(tables[RFM_THRESHOLDS.name], RFM_THRESHOLDS.columns)
    }
    names = [m.name for m in SEGMENT_BASES]
    stats: dict[tuple[str, str, str], list] = {}
    members = []
    profile = tables[CUSTOMER_PROFILE.name]
    for row in _rows(profile, CUSTOMER_PROFILE.columns):
        key, raw = row[:2], dict(zip(CUSTOMER_PROFILE.values, row[2:], strict=True))
        derived = CATALOG.derive(Grain.customer, dict(raw))
        for by in SEGMENTATIONS:
            seg = segment_of(
                by, traits=traits.get(key, {}), raw=derived, first_month=first.get(key), cuts=cuts.get(key[0])
            )
            acc = stats.setdefault((key[0], by, seg), [0, *([] for _ in names)])
            acc[0] += 1
            for i, name in enumerate(names, 1):
                acc[i].append(raw[name])
            members.append((key[0], by, seg, key[1]))
    out = []
    for (tenant, by, seg), (customers, *values) in sorted(stats.items()):
        states = [_state(m, v) for m, v in zip(SEGMENT_BASES, values, strict=True)]
        out.append((tenant, by, seg, customers, *states))
    members.sort()
    return _table(out, STATS_SCHEMA), _table(members, MEMBERS_SCHEMA)


def _state(metric, values: list):
    """One segment's base state over its customers' batch states (what serving corrects)."""
    if metric.aggregate is Aggregate.hll_distinct:
        return aggregates.union_sketch(values, ()).serialize_compact()
    return aggregates.merge_all(metric, values, ())


def _table(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema)

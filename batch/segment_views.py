"""The segment views (``schemas.views.SEGMENT_STATS``, ``SEGMENT_MEMBERS``) from the per-customer views.

Every merged customer of the version (its identity component over the batch's alias edges, counted
once under its canonical id) is put in its segment of every segmentation with the one definition,
``schemas.segments.segment_of``, over its ids' merged batch state — the state serving takes out again
when the speed side touched one of its ids. Like the cohort views, the inputs are per-customer Arrow tables
collected on the driver (customers × a few columns).
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

from lambdalytics.schemas import aggregates, identity
from lambdalytics.schemas.catalog import Aggregate
from lambdalytics.schemas.segments import SEGMENT_BASES, SEGMENTATIONS, component_raw, segment_of
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

Groups = dict[str, dict[str, identity.Component]]

_TYPES = {Aggregate.hll_distinct: pa.binary()}
STATS_SCHEMA = pa.schema(
    [(k, pa.string()) for k in SEGMENT_STATS.keys]
    + [("customers", pa.int64())]
    + [(m.name, _TYPES.get(m.aggregate, pa.int64())) for m in SEGMENT_BASES]
)
MEMBERS_SCHEMA = pa.schema([(k, pa.string()) for k in SEGMENT_MEMBERS.keys])


def _rows(table: pa.Table, columns) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def segment_views(tables: dict[str, pa.Table], groups: Groups | None = None) -> tuple[pa.Table, pa.Table]:
    """(segment stats, segment members) of the version whose event and RFM views are ``tables``; each
    merged customer (``groups``: the version's identity components) once, under its canonical id."""
    groups = groups or {}
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
    merged: dict[tuple[str, str], list[tuple[str, dict]]] = defaultdict(list)  # (tenant, canonical) -> ids
    for row in _rows(tables[CUSTOMER_PROFILE.name], CUSTOMER_PROFILE.columns):
        tenant, customer = row[:2]
        canonical = identity.group_of(customer, groups.get(tenant, {}))
        merged[(tenant, canonical)].append(
            (customer, dict(zip(CUSTOMER_PROFILE.values, row[2:], strict=True)))
        )
    for (tenant, canonical), ids in merged.items():
        keys = [(tenant, c) for c, _ in ids]
        derived = component_raw([raw for _, raw in ids], [])
        latest = aggregates.merge_latest(*(traits.get(k) for k in keys))
        month = min((first[k] for k in keys if first.get(k) is not None), default=None)
        for by in SEGMENTATIONS:
            seg = segment_of(by, traits=latest, raw=derived, first_month=month, cuts=cuts.get(tenant))
            acc = stats.setdefault((tenant, by, seg), [0, *([] for _ in names)])
            acc[0] += 1
            for i, name in enumerate(names, 1):
                acc[i] += [raw[name] for _, raw in ids]
            members.append((tenant, by, seg, canonical))
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

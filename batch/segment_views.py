"""The segment views (``schemas.views.SEGMENT_STATS``, ``SEGMENT_MEMBERS``) from the per-customer views.

Every merged customer of the version (its identity component over the batch's alias edges, counted
once under its canonical id) is put in its segment of every segmentation with the one definition,
``schemas.segments.segment_of``, over its ids' merged batch state — the state serving takes out again
when the speed side touched one of its ids. Like the cohort views, the inputs are per-customer Arrow
tables collected on the driver (customers × a few columns). Customers without an alias (nearly all)
take the columnar path; the ids of multi-id components (in proportion to aliases) are merged row-wise.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lambdalytics.schemas import aggregates, identity, rfm
from lambdalytics.schemas.catalog import CATALOG, Aggregate, Grain
from lambdalytics.schemas.cohorts import month_label
from lambdalytics.schemas.segments import NO_VALUE, SEGMENT_BASES, SEGMENTATIONS, component_raw, segment_of
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


def segment_views(tables: dict[str, pa.Table], groups: Groups | None = None) -> tuple[pa.Table, pa.Table]:
    """(segment stats, segment members) of the version whose event and RFM views are ``tables``; each
    merged customer (``groups``: the version's identity components) once, under its canonical id.

    Columnar: each segmentation's segment of every customer is an array (``segment_of``'s rules over
    whole columns — the latest trait's value, the first order month's label, the RFM segment of the
    customer's R/F/M under its tenant's cut points), and the stats are one group-by over the members
    (counts and sums add, sketches union). The per-customer rule, ``segment_of``, is what serving applies
    to a customer it corrects; ``tests/serving/test_segments.py`` holds the two to the same answers."""
    profile, merged = _split_merged(tables[CUSTOMER_PROFILE.name], groups or {})
    keys = profile.select(list(CUSTOMER_KEYS)).append_column(
        "_row", pa.array(range(profile.num_rows), pa.int64())
    )
    per_by = {}
    for by in SEGMENTATIONS:
        if by.startswith("trait:"):
            per_by[by] = _trait_segments(keys, tables[CUSTOMER_TRAITS.name], by.removeprefix("trait:"))
        elif by == "cohort":
            per_by[by] = _cohort_segments(keys, tables[ORDER_MONTHS.name])
        else:
            per_by[by] = _rfm_segments(profile, tables[RFM_THRESHOLDS.name])
    tenant, customer = CUSTOMER_KEYS
    bases = [m.name for m in SEGMENT_BASES]
    members = pa.concat_tables(
        [
            pa.table(
                {
                    tenant: profile.column(tenant),
                    "by": pa.array([by] * profile.num_rows, pa.string()),
                    "segment": segments,
                    customer: profile.column(customer),
                    **{name: profile.column(name) for name in bases},
                    "_member": pa.array(np.ones(profile.num_rows, np.int64)),
                }
            )
            for by, segments in per_by.items()
        ]
        + [_merged_members(tables, merged, groups or {}, members_like=profile.schema)],
        promote_options="none",
    )
    ops = [("_member", "sum")] + [
        (m.name, "list" if m.aggregate is Aggregate.hll_distinct else "sum") for m in SEGMENT_BASES
    ]
    grouped = members.group_by(list(SEGMENT_STATS.keys), use_threads=False).aggregate(ops)
    columns = {k: grouped.column(k) for k in SEGMENT_STATS.keys}
    columns["customers"] = grouped.column("_member_sum")
    for metric, (name, op) in zip(SEGMENT_BASES, ops[1:], strict=True):
        values = grouped.column(f"{name}_{op}")
        if metric.aggregate is Aggregate.hll_distinct:
            values = pa.array([_state(metric, v) for v in values.to_pylist()], pa.binary())
        elif metric.aggregate is Aggregate.count:  # a count over no matching event is 0, not null
            values = pc.fill_null(values, 0)
        columns[name] = values
    stats = pa.table(
        [columns[c].cast(STATS_SCHEMA.field(c).type) for c in STATS_SCHEMA.names], schema=STATS_SCHEMA
    )
    order = [(k, "ascending") for k in SEGMENT_STATS.keys]
    member_rows = members.filter(pc.equal(members.column("_member"), 1))
    member_rows = member_rows.select(MEMBERS_SCHEMA.names).cast(MEMBERS_SCHEMA)
    return stats.sort_by(order), member_rows.sort_by([(k, "ascending") for k in SEGMENT_MEMBERS.keys])


def _split_merged(profile: pa.Table, groups: Groups) -> tuple[pa.Table, pa.Table]:
    """(rows of customers alone, rows of the ids of multi-id components) of the profile view."""
    ids = [(t, c) for t, comps in groups.items() for c, comp in comps.items() if len(comp.ids) > 1]
    if not ids:
        return profile, profile.slice(0, 0)
    tenant, customer = CUSTOMER_KEYS
    joined = pc.binary_join_element_wise(profile.column(tenant), profile.column(customer), "\x00")
    mask = pc.is_in(joined, value_set=pa.array([f"{t}\x00{c}" for t, c in ids], pa.string()))
    return profile.filter(pc.invert(mask)), profile.filter(mask)


def _merged_members(tables: dict[str, pa.Table], merged: pa.Table, groups: Groups, members_like: pa.Schema):
    """The member rows of the multi-id components (one per id per segmentation, the segment of its whole
    component; ``_member`` 1 on one row of each component under its canonical id, so it counts once)."""
    bases = [m.name for m in SEGMENT_BASES]
    tenant_key, customer_key = CUSTOMER_KEYS
    of = {(t, c) for t, c in _rows(merged, CUSTOMER_KEYS)}
    traits: dict[tuple[str, str], dict] = defaultdict(dict)
    for tenant, customer, trait, t, offset, value in _rows(
        tables[CUSTOMER_TRAITS.name], CUSTOMER_TRAITS.columns
    ):
        if (tenant, customer) in of:
            traits[(tenant, customer)][trait] = (t, offset, value)
    first = {
        (t, c): m
        for t, c, m in _rows(tables[ORDER_MONTHS.name], (*CUSTOMER_KEYS, "first_month"))
        if (t, c) in of
    }
    cuts = {
        row[0]: dict(zip(RFM_CUTS, row[2:], strict=True))
        for row in _rows(tables[RFM_THRESHOLDS.name], RFM_THRESHOLDS.columns)
    }
    components: dict[tuple[str, str], list[tuple[str, dict]]] = defaultdict(list)
    for row in _rows(merged, CUSTOMER_PROFILE.columns):
        tenant, customer = row[:2]
        canonical = identity.group_of(customer, groups.get(tenant, {}))
        components[(tenant, canonical)].append(
            (customer, dict(zip(CUSTOMER_PROFILE.values, row[2:], strict=True)))
        )
    rows: dict[str, list] = {k: [] for k in (tenant_key, "by", "segment", customer_key, *bases, "_member")}
    for (tenant, canonical), ids in components.items():
        keys = [(tenant, c) for c, _ in ids]
        derived = component_raw([raw for _, raw in ids], [])
        latest = aggregates.merge_latest(*(traits.get(k) for k in keys))
        month = min((first[k] for k in keys if first.get(k) is not None), default=None)
        for by in SEGMENTATIONS:
            seg = segment_of(by, traits=latest, raw=derived, first_month=month, cuts=cuts.get(tenant))
            for n, (_, raw) in enumerate(ids):
                for column, value in (
                    (tenant_key, tenant),
                    ("by", by),
                    ("segment", seg),
                    (customer_key, canonical),
                ):
                    rows[column].append(value)
                for name in bases:
                    rows[name].append(raw[name])
                rows["_member"].append(int(n == 0))
    types = {k: members_like.field(k).type for k in CUSTOMER_KEYS} | {
        "by": pa.string(),
        "segment": pa.string(),
    }
    types |= {name: members_like.field(name).type for name in bases} | {"_member": pa.int64()}
    return pa.table({k: pa.array(v, types[k]) for k, v in rows.items()})


def _aligned(keys: pa.Table, values: pa.Table, column: str) -> pa.Array:
    """``values[column]`` for each row of ``keys`` (joined on the customer keys), NO_VALUE where absent."""
    joined = keys.join(values.select([*CUSTOMER_KEYS, column]), list(CUSTOMER_KEYS), join_type="left outer")
    joined = joined.sort_by("_row")
    return pc.fill_null(joined.column(column).cast(pa.string()), NO_VALUE).combine_chunks()


def _trait_segments(keys: pa.Table, traits: pa.Table, name: str) -> pa.Array:
    """A trait's segment: the value of the customer's latest ``identify`` of it (the view holds it)."""
    of_trait = traits.filter(pc.equal(traits.column(CUSTOMER_TRAITS.keys[-1]), name))
    return _aligned(keys, of_trait.rename_columns([*of_trait.column_names[:-1], "_value"]), "_value")


def _cohort_segments(keys: pa.Table, months: pa.Table) -> pa.Array:
    """The cohort segment: the label of the customer's first order month."""
    first = months.column("first_month").to_pylist()
    labels = pa.array([month_label(m) for m in first], pa.string())
    return _aligned(keys, months.select(list(CUSTOMER_KEYS)).append_column("_label", labels), "_label")


def _rfm_segments(profile: pa.Table, thresholds: pa.Table) -> pa.Array:
    """The RFM segment of each customer under its tenant's cut points (``rfm.scores`` over columns):
    NO_VALUE when the customer never ordered or its tenant has no cut points."""
    r = profile.column(rfm.R_METRIC).to_numpy(zero_copy_only=False)
    f = pc.fill_null(profile.column(rfm.F_METRIC), 0).to_numpy(zero_copy_only=False)
    operands = CATALOG[rfm.M_METRIC].operands
    bases = {o: pc.fill_null(profile.column(o), 0).to_numpy(zero_copy_only=False) for o in operands}
    m = np.asarray(CATALOG.derive(Grain.customer, bases)[rfm.M_METRIC], dtype=np.float64)
    values = dict(zip(rfm.DIMENSIONS, (r, f, m), strict=True))
    cuts_of = {
        row[0]: dict(zip(RFM_CUTS, row[2:], strict=True)) for row in _rows(thresholds, RFM_THRESHOLDS.columns)
    }
    out = np.full(profile.num_rows, NO_VALUE, dtype=object)
    if not profile.num_rows:
        return pa.array(out, pa.string())
    ordered = ~pc.is_null(profile.column(rfm.R_METRIC)).to_numpy(zero_copy_only=False) & (f != 0)
    # each tenant's rows found once (one sort), not a pass over every customer per tenant
    tenants, of_row = np.unique(
        profile.column(CUSTOMER_KEYS[0]).to_numpy(zero_copy_only=False), return_inverse=True
    )
    bounds = np.cumsum(np.bincount(of_row, minlength=len(tenants)))[:-1]
    for tenant, rows in zip(tenants, np.split(np.argsort(of_row, kind="stable"), bounds), strict=True):
        cuts = cuts_of.get(tenant)
        at = rows[ordered[rows]]
        if not cuts or not len(at):
            continue
        score = {
            d: 1
            + (values[d][at].astype(np.float64)[:, None] > np.asarray(cuts[d], np.float64)[None, :]).sum(1)
            for d in ("r", "f")
        }
        out[at] = _SEGMENT_OF[score["r"], score["f"]]
    return pa.array(out, pa.string())


_SEGMENT_OF = np.array(
    [[rfm.segment(r, f) if r and f else NO_VALUE for f in range(6)] for r in range(6)], dtype=object
)
"""``rfm.segment(r, f)`` for every pair of scores 1..5 (row 0 and column 0 unused)."""


def _rows(table: pa.Table, columns) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def _state(metric, values: list):
    """One segment's base state over its customers' batch states (what serving corrects)."""
    return aggregates.union_sketch(values, ()).serialize_compact()


def _table(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema)

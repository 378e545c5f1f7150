"""The derived views, computed from the event views: order months, cohort counts and RFM cut points.

They reuse the single definitions in ``schemas.cohorts`` and ``schemas.rfm``, and serving finishes them
on merged data: it corrects the cohort counts for the customers the speed side touched (their batch
order months are :data:`~lambdalytics.schemas.views.ORDER_MONTHS`) and scores merged R/F/M with the cut
points. The inputs are the per-customer views collected as Arrow: customers × months and customers × 3
numbers fit in driver memory well past 1 M customers.
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

from lambdalytics.schemas import identity, rfm
from lambdalytics.schemas.catalog import CATALOG, Aggregate, Grain
from lambdalytics.schemas.cohorts import COHORT_METRIC, CohortCounts, order_months
from lambdalytics.schemas.views import (
    ALIAS_EDGES,
    COHORT_COUNTS,
    CUSTOMER_KEYS,
    HOUR,
    IDENTITY_COMPONENTS,
    ORDER_MONTHS,
    RFM_CUTS,
    RFM_THRESHOLDS,
    TENANT_KEYS,
    View,
)

__all__ = ["cohort_views", "identity_components", "months_of", "rfm_thresholds", "tenant_components"]

Groups = dict[str, dict[str, identity.Component]]
"""Per tenant: every id an alias names → its component (``schemas.identity.components``)."""

_KEY_TYPES = {**dict.fromkeys(CUSTOMER_KEYS, pa.string()), COHORT_COUNTS.keys[-1]: pa.int64()}
_MONTHS = pa.list_(pa.int64())


def _schema(view: View, value_types: list[pa.DataType]) -> pa.Schema:
    return pa.schema(list(zip(view.columns, [_KEY_TYPES[k] for k in view.keys] + value_types, strict=True)))


ORDER_MONTHS_SCHEMA = _schema(ORDER_MONTHS, [pa.int64(), _MONTHS])
COHORT_SCHEMA = _schema(COHORT_COUNTS, [pa.int64(), _MONTHS])
THRESHOLD_SCHEMA = _schema(RFM_THRESHOLDS, [pa.int64()] + [pa.list_(pa.float64())] * len(RFM_CUTS))
COMPONENTS_SCHEMA = _schema(IDENTITY_COMPONENTS, [pa.string(), pa.int64(), pa.bool_()])


def tenant_components(edges: pa.Table) -> Groups:
    """The components of every tenant's alias edges (``alias_edges``: few rows next to the events)."""
    by_tenant: dict[str, list[identity.Alias]] = defaultdict(list)
    tenant, survivor, previous = ALIAS_EDGES.keys
    time, event_id = ALIAS_EDGES.values
    for row in edges.select([tenant, survivor, previous, time, event_id]).to_pylist():
        by_tenant[row[tenant]].append(identity.Alias(row[time], row[event_id], row[previous], row[survivor]))
    return {t: identity.components(e) for t, e in by_tenant.items()}


def identity_components(groups: Groups) -> pa.Table:
    """``identity_components``: per aliased id, its canonical id, its component's size, refused or not."""
    rows = []
    for tenant in sorted(groups):
        for customer, comp in sorted(groups[tenant].items()):
            size = len(comp.ids) if comp.refused is None else identity.MAX_COMPONENT_IDS + 1
            rows.append((tenant, customer, comp.canonical, size, comp.refused is not None))
    return _table(rows, COMPONENTS_SCHEMA)


def cohort_views(timeseries: pa.Table, groups: Groups | None = None) -> tuple[pa.Table, pa.Table]:
    """``customer_order_months`` (customers who ordered) and ``cohort_counts`` from ``customer_timeseries``.

    Order months stay per id; the cohort counts count a merged customer once, with its ids' months."""
    groups = groups or {}
    months_by_tenant: dict[str, dict[str, set[int]]] = defaultdict(dict)
    order_months_table = months_of(timeseries)
    for tenant, customer, months in _rows(order_months_table, [*CUSTOMER_KEYS, "months"]):
        months_by_tenant[tenant][customer] = set(months)
    cohorts = [
        (tenant, *row)
        for tenant in sorted(months_by_tenant)
        for row in CohortCounts.of(_by_group(months_by_tenant[tenant], groups.get(tenant, {}))).rows()
    ]
    return order_months_table, _table(cohorts, COHORT_SCHEMA)


def months_of(timeseries: pa.Table) -> pa.Table:
    """``customer_order_months`` of the customers in ``customer_timeseries`` rows (those who ordered)."""
    per_customer = timeseries.group_by(list(CUSTOMER_KEYS), use_threads=False).aggregate(
        [(HOUR, "list"), (COHORT_METRIC, "list")]
    )
    rows = []
    for tenant, customer, hours, orders in _rows(
        per_customer, [*CUSTOMER_KEYS, f"{HOUR}_list", f"{COHORT_METRIC}_list"]
    ):
        months = order_months(zip(hours, orders, strict=True))
        if months:
            rows.append((tenant, customer, min(months), sorted(months)))
    return _table(rows, ORDER_MONTHS_SCHEMA)


def _rows(table: pa.Table, columns: list[str]):
    return zip(*(table.column(c).to_pylist() for c in columns), strict=True)


def _by_group(months: dict[str, set[int]], groups: dict[str, identity.Component]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = defaultdict(set)
    for customer, m in months.items():
        out[identity.group_of(customer, groups)] |= m
    return out


_PANDAS_MERGE = {Aggregate.count: "sum", Aggregate.sum: "sum", Aggregate.min: "min", Aggregate.max: "max"}


def rfm_thresholds(profile: pa.Table, groups: Groups | None = None) -> pa.Table:
    """Per tenant, the quintile cut points of R, F and M over the customers with at least one order
    (a merged customer once: its ids' rows merged by each metric's aggregate first)."""
    operands = CATALOG[rfm.M_METRIC].operands
    needed = {rfm.R_METRIC, rfm.F_METRIC, *operands}
    df = profile.select([*CUSTOMER_KEYS, *sorted(needed)]).to_pandas()
    if groups:
        tenant, customer = CUSTOMER_KEYS
        df[customer] = [
            identity.group_of(c, groups.get(t, {})) for t, c in zip(df[tenant], df[customer], strict=True)
        ]
        rules = {name: _PANDAS_MERGE[CATALOG[name].aggregate] for name in sorted(needed)}
        df = df.groupby(list(CUSTOMER_KEYS), as_index=False).agg(rules)
    df = df[df[rfm.R_METRIC].notna() & (df[rfm.F_METRIC] > 0)]
    bases = {name: df[name].fillna(0).astype("int64").to_numpy() for name in operands}
    r, f = (df[name].astype("int64").to_numpy() for name in (rfm.R_METRIC, rfm.F_METRIC))
    m = CATALOG.derive(Grain.customer, bases)[rfm.M_METRIC]
    values = dict(zip(rfm.DIMENSIONS, (r, f, m), strict=True))
    rows = [
        (tenant, len(at), *(rfm.cut_points(values[d][at]) for d in rfm.DIMENSIONS))
        for tenant, at in sorted(df.groupby(TENANT_KEYS[0]).indices.items())
    ]
    return _table(rows, THRESHOLD_SCHEMA)


def _table(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema)

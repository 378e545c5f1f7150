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

from lambdalytics.schemas import rfm
from lambdalytics.schemas.catalog import CATALOG, Grain
from lambdalytics.schemas.cohorts import COHORT_METRIC, CohortCounts, order_months
from lambdalytics.schemas.views import (
    COHORT_COUNTS,
    CUSTOMER_KEYS,
    HOUR,
    ORDER_MONTHS,
    RFM_CUTS,
    RFM_THRESHOLDS,
    TENANT_KEYS,
    View,
)

__all__ = ["cohort_views", "rfm_thresholds"]

_KEY_TYPES = {**dict.fromkeys(CUSTOMER_KEYS, pa.string()), COHORT_COUNTS.keys[-1]: pa.int64()}
_MONTHS = pa.list_(pa.int64())


def _schema(view: View, value_types: list[pa.DataType]) -> pa.Schema:
    return pa.schema(list(zip(view.columns, [_KEY_TYPES[k] for k in view.keys] + value_types, strict=True)))


ORDER_MONTHS_SCHEMA = _schema(ORDER_MONTHS, [pa.int64(), _MONTHS])
COHORT_SCHEMA = _schema(COHORT_COUNTS, [pa.int64(), _MONTHS])
THRESHOLD_SCHEMA = _schema(RFM_THRESHOLDS, [pa.int64()] + [pa.list_(pa.float64())] * len(RFM_CUTS))


def cohort_views(timeseries: pa.Table) -> tuple[pa.Table, pa.Table]:
    """``customer_order_months`` (customers who ordered) and ``cohort_counts`` from ``customer_timeseries``."""
    per_customer = timeseries.group_by(list(CUSTOMER_KEYS), use_threads=False).aggregate(
        [(HOUR, "list"), (COHORT_METRIC, "list")]
    )
    months_by_tenant: dict[str, dict[str, set[int]]] = defaultdict(dict)
    rows = []
    columns = [*CUSTOMER_KEYS, f"{HOUR}_list", f"{COHORT_METRIC}_list"]
    for tenant, customer, hours, orders in zip(
        *(per_customer.column(c).to_pylist() for c in columns), strict=True
    ):
        months = order_months(zip(hours, orders, strict=True))
        if months:
            months_by_tenant[tenant][customer] = months
            rows.append((tenant, customer, min(months), sorted(months)))
    cohorts = [
        (tenant, *row)
        for tenant in sorted(months_by_tenant)
        for row in CohortCounts.of(months_by_tenant[tenant]).rows()
    ]
    return _table(rows, ORDER_MONTHS_SCHEMA), _table(cohorts, COHORT_SCHEMA)


def rfm_thresholds(profile: pa.Table) -> pa.Table:
    """Per tenant, the quintile cut points of R, F and M over the customers with at least one order."""
    operands = CATALOG[rfm.M_METRIC].operands
    needed = {rfm.R_METRIC, rfm.F_METRIC, *operands}
    df = profile.select([*TENANT_KEYS, *sorted(needed)]).to_pandas()
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

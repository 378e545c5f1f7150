"""Tenant-level views computed from the customer views: cohort retention and RFM.

They reuse the single definitions in ``schemas.cohorts`` and ``schemas.rfm`` (the serving layer applies
the same functions to merged data), so the inputs are the per-customer views, collected as Arrow:
customers × months and customers × 3 numbers fit in driver memory well past 1 M customers.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from lambdalytics.schemas import rfm
from lambdalytics.schemas.catalog import CATALOG, Grain
from lambdalytics.schemas.cohorts import COHORT_METRIC, month_index, retention

__all__ = ["cohort_retention", "rfm_views"]

COHORT_SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("cohort", pa.string()),
        ("size", pa.int64()),
        ("retention", pa.list_(pa.float64())),
    ]
)
THRESHOLD_SCHEMA = pa.schema(
    [("tenant_id", pa.string()), ("customers", pa.int64())]
    + [(f"{k}_cuts", pa.list_(pa.float64())) for k in ("r", "f", "m")]
)
SCORE_SCHEMA = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("customer_id", pa.string()),
        ("last_order_at", pa.int64()),
        ("recency_days", pa.int64()),
        ("frequency", pa.int64()),
        ("monetary", pa.int64()),
        ("r", pa.int8()),
        ("f", pa.int8()),
        ("m", pa.int8()),
        ("segment", pa.string()),
    ]
)


def customer_order_months(timeseries: pa.Table) -> pd.DataFrame:
    """(tenant_id, customer_id, month) for every month with at least one order_placed."""
    ts = timeseries.select(["tenant_id", "customer_id", "hour", COHORT_METRIC]).to_pandas()
    ts = ts[ts[COHORT_METRIC] > 0]
    ts = ts.assign(month=month_index(ts["hour"].to_numpy()))
    return ts[["tenant_id", "customer_id", "month"]].drop_duplicates()


def cohort_retention(timeseries: pa.Table) -> pa.Table:
    months = customer_order_months(timeseries)
    rows = []
    for tenant, group in months.groupby("tenant_id", sort=True):
        per_customer = group.groupby("customer_id")["month"].agg(set).to_dict()
        rows += [{"tenant_id": tenant, **row} for row in retention(per_customer)]
    return pa.Table.from_pylist(rows, schema=COHORT_SCHEMA)


def rfm_views(profile: pa.Table, as_of_ms: int) -> tuple[pa.Table, pa.Table]:
    """Per-tenant quintile cuts and per-customer scores (customers with at least one order)."""
    needed = {rfm.R_METRIC, rfm.F_METRIC, *CATALOG[rfm.M_METRIC].operands}
    df = profile.select(["tenant_id", "customer_id", *sorted(needed)]).to_pandas()
    df = df[df[rfm.R_METRIC].notna() & (df[rfm.F_METRIC] > 0)]
    bases = {name: df[name].fillna(0).astype("int64").to_numpy() for name in CATALOG[rfm.M_METRIC].operands}
    df = df.assign(
        monetary=CATALOG.derive(Grain.customer, bases)[rfm.M_METRIC],
        frequency=df[rfm.F_METRIC].astype("int64"),
        last_order_at=df[rfm.R_METRIC].astype("int64"),
    )
    thresholds, scores = [], []
    for tenant, group in df.groupby("tenant_id", sort=True):
        cuts = {
            "r": rfm.cut_points(group["last_order_at"].to_numpy()),
            "f": rfm.cut_points(group["frequency"].to_numpy()),
            "m": rfm.cut_points(group["monetary"].to_numpy()),
        }
        thresholds.append(
            {"tenant_id": tenant, "customers": len(group), **{f"{k}_cuts": v for k, v in cuts.items()}}
        )
        for cust, last, freq, mon in zip(
            group["customer_id"], group["last_order_at"], group["frequency"], group["monetary"], strict=True
        ):
            r, f, m = rfm.score(last, cuts["r"]), rfm.score(freq, cuts["f"]), rfm.score(mon, cuts["m"])
            scores.append(
                {
                    "tenant_id": tenant,
                    "customer_id": cust,
                    "last_order_at": int(last),
                    "recency_days": rfm.recency_days(int(last), as_of_ms),
                    "frequency": int(freq),
                    "monetary": int(mon),
                    "r": r,
                    "f": f,
                    "m": m,
                    "segment": rfm.segment(r, f),
                }
            )
    return (
        pa.Table.from_pylist(thresholds, schema=THRESHOLD_SCHEMA),
        pa.Table.from_pylist(scores, schema=SCORE_SCHEMA),
    )

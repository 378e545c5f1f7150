"""The batch's segments equal ``schemas.segments.segment_of`` merged customer by merged customer, and its
stats are the sums and unions of each segment's members (random profiles, traits, order months and cut
points, with missing values, a tenant without cut points, customers that never ordered, and random alias
edges: components of several ids, some with a survivor that has no events, each counted once)."""

from __future__ import annotations

import datasketches
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdalytics.batch.segment_views import segment_views
from lambdalytics.batch.tenant_views import ORDER_MONTHS_SCHEMA, rfm_thresholds
from lambdalytics.schemas import aggregates, identity
from lambdalytics.schemas.catalog import CATALOG, Aggregate, Grain
from lambdalytics.schemas.segments import SEGMENT_BASES, SEGMENTATIONS, component_raw, segment_of
from lambdalytics.schemas.views import CUSTOMER_PROFILE, CUSTOMER_TRAITS, RFM_CUTS, RFM_THRESHOLDS

pytestmark = pytest.mark.unit
T0 = 1_767_225_600_000
TRAITS_SCHEMA = pa.schema(
    [(c, pa.int64() if c in ("event_time", "offset") else pa.string()) for c in CUSTOMER_TRAITS.columns]
)


def _sketch(n: int) -> bytes | None:
    if n == 0:
        return None
    sketch = datasketches.hll_sketch(12, datasketches.tgt_hll_type.HLL_8)
    for i in range(n):
        sketch.update(f"s{i}")
    return sketch.serialize_updatable()


customer = st.fixed_dictionaries(
    {
        "tenant": st.sampled_from(["a", "b", "c"]),
        "values": st.lists(st.one_of(st.none(), st.integers(0, 4)), min_size=32, max_size=32),
        "last_order": st.one_of(st.none(), st.integers(0, 90)),
        "sessions": st.integers(0, 4),
        "traits": st.dictionaries(
            st.sampled_from(["plan", "company_size"]), st.sampled_from(["free", "pro", "10"])
        ),
        "first_month": st.one_of(st.none(), st.integers(670, 675)),
    }
)


def _tables(customers: list[dict]) -> dict[str, pa.Table]:
    rows, traits, months = [], [], []
    for i, c in enumerate(customers):
        row = {"tenant_id": c["tenant"], "customer_id": f"c{i}"}
        for name, value in zip(CUSTOMER_PROFILE.values, c["values"], strict=False):
            metric = CATALOG[name]
            if metric.aggregate is Aggregate.hll_distinct:
                row[name] = _sketch(c["sessions"])
            elif name == "last_order_at":
                row[name] = None if c["last_order"] is None else T0 + c["last_order"] * 86_400_000
            else:
                row[name] = value
        rows.append(row)
        traits += [
            {
                "tenant_id": c["tenant"],
                "customer_id": f"c{i}",
                "trait": t,
                "event_time": 1,
                "offset": i,
                "value": v,
            }
            for t, v in c["traits"].items()
        ]
        if c["first_month"] is not None:
            months.append(
                {
                    "tenant_id": c["tenant"],
                    "customer_id": f"c{i}",
                    "first_month": c["first_month"],
                    "months": [c["first_month"]],
                }
            )
    types = {
        name: pa.binary() if CATALOG[name].aggregate is Aggregate.hll_distinct else pa.int64()
        for name in CUSTOMER_PROFILE.values
    }
    schema = pa.schema([("tenant_id", pa.string()), ("customer_id", pa.string()), *types.items()])
    profile = pa.Table.from_pylist(rows, schema=schema)
    with_cuts = profile.filter(pa.compute.not_equal(profile.column("tenant_id"), "c"))  # c: no cut points
    return {
        CUSTOMER_PROFILE.name: profile,
        CUSTOMER_TRAITS.name: pa.Table.from_pylist(traits, schema=TRAITS_SCHEMA),
        "customer_order_months": pa.Table.from_pylist(months, schema=ORDER_MONTHS_SCHEMA),
        RFM_THRESHOLDS.name: rfm_thresholds(with_cuts),
    }


def _groups(customers: list[dict], edges: list[tuple[int, int]]) -> dict[str, dict[str, identity.Component]]:
    """Components of random alias edges within a tenant; a survivor index past the customers is an id
    with no events (``u<n>``)."""
    by_tenant: dict[str, list[identity.Alias]] = {}
    for n, (previous, survivor) in enumerate(edges):
        if previous >= len(customers) or previous == survivor:
            continue
        tenant = customers[previous]["tenant"]
        if survivor < len(customers):
            if customers[survivor]["tenant"] != tenant:
                continue
            to = f"c{survivor}"
        else:
            to = f"u{survivor}"
        by_tenant.setdefault(tenant, []).append(identity.Alias(n, f"e{n}", f"c{previous}", to))
    return {t: identity.components(e) for t, e in by_tenant.items()}


@settings(max_examples=60, deadline=None)
@given(
    customers=st.lists(customer, max_size=40),
    edges=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 44)), max_size=12),
)
def test_columnar_segments_are_segment_of_and_stats_their_members(customers, edges):
    tables = _tables(customers)
    groups = _groups(customers, edges)
    stats, members = segment_views(tables, groups)
    cuts = {
        row[0]: dict(zip(RFM_CUTS, row[2:], strict=True))
        for row in zip(
            *(tables[RFM_THRESHOLDS.name].column(c).to_pylist() for c in RFM_THRESHOLDS.columns), strict=True
        )
    }
    first = {
        (r["tenant_id"], r["customer_id"]): r["first_month"]
        for r in tables["customer_order_months"].to_pylist()
    }
    traits: dict = {}
    for r in tables[CUSTOMER_TRAITS.name].to_pylist():
        traits.setdefault((r["tenant_id"], r["customer_id"]), {})[r["trait"]] = (
            r["event_time"],
            r["offset"],
            r["value"],
        )
    merged: dict[tuple[str, str], list[dict]] = {}  # (tenant, canonical id) -> its ids' profile rows
    for row in tables[CUSTOMER_PROFILE.name].to_pylist():
        canonical = identity.group_of(row["customer_id"], groups.get(row["tenant_id"], {}))
        merged.setdefault((row["tenant_id"], canonical), []).append(row)
    expected, by_segment, counted = [], {}, {}
    for (tenant, canonical), rows in merged.items():
        keys = [(tenant, r["customer_id"]) for r in rows]
        if len(rows) == 1:
            raw = CATALOG.derive(Grain.customer, {k: rows[0][k] for k in CUSTOMER_PROFILE.values})
        else:
            raw = component_raw([{k: r[k] for k in CUSTOMER_PROFILE.values} for r in rows], [])
        latest = aggregates.merge_latest(*(traits.get(k) for k in keys))
        month = min((first[k] for k in keys if first.get(k) is not None), default=None)
        for by in SEGMENTATIONS:
            seg = segment_of(by, traits=latest, raw=raw, first_month=month, cuts=cuts.get(tenant))
            expected.append((tenant, by, seg, canonical))
            by_segment.setdefault((tenant, by, seg), []).extend(rows)
            counted[(tenant, by, seg)] = counted.get((tenant, by, seg), 0) + 1
    assert [tuple(r.values()) for r in members.to_pylist()] == sorted(expected)
    assert len(stats) == len(by_segment)
    for got in stats.to_pylist():
        rows = by_segment[(got["tenant_id"], got["by"], got["segment"])]
        assert got["customers"] == counted[(got["tenant_id"], got["by"], got["segment"])]
        for metric in SEGMENT_BASES:
            values = [r[metric.name] for r in rows]
            if metric.aggregate is Aggregate.hll_distinct:
                want = round(aggregates.union_sketch(values, ()).get_estimate())
                assert round(datasketches.hll_sketch.deserialize(got[metric.name]).get_estimate()) == want
            else:
                assert got[metric.name] == aggregates.merge_all(metric, values, ()), metric.name

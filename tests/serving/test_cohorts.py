"""Cohorts from the batch's counts, corrected for the speed side, equal the cohort table of merged months.

No Spark: the batch side's derived views are computed by ``batch.tenant_views`` from a
``customer_timeseries`` table, the speed side is the embedded store fed with order events above W, and
the merger's answer must equal ``schemas.cohorts.retention`` over the union of both sides' months.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdalytics.batch.tenant_views import cohort_views
from lambdalytics.batch.writer import Manifest
from lambdalytics.schemas.cohorts import COHORT_METRIC, retention
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.schemas.views import COHORT_COUNTS, ORDER_MONTHS, VIEWS
from lambdalytics.serving.index import BatchIndex
from lambdalytics.serving.merge import Merger
from lambdalytics.speed.embedded import EmbeddedSpeedStore

pytestmark = pytest.mark.unit
TENANT, OTHER = "demo-a", "demo-b"
BASE = (2025 - 1970) * 12  # 2025-01
TOPIC = "events.transaction"
W = 100


def month_start(month: int, day: int = 1) -> dt.datetime:
    return dt.datetime(1970 + month // 12, month % 12 + 1, day, tzinfo=dt.UTC)


def batch_index(batch: dict[tuple[str, str], set[int]], idle: set[tuple[str, str]]) -> BatchIndex:
    """The index of a batch version whose customer_timeseries holds these order months (and idle hours)."""
    rows = [
        (t, c, int(month_start(m, 1 + m % 27).timestamp() * 1000), 1 + m % 3)
        for (t, c), months in batch.items()
        for m in months
    ]
    rows += [(t, c, int(month_start(BASE).timestamp() * 1000), 0) for t, c in idle]  # an hour with no order
    names = ["tenant_id", "customer_id", "hour", COHORT_METRIC]
    ts = pa.table(
        dict(zip(names, map(list, zip(*rows, strict=True)), strict=True)) if rows else {n: [] for n in names}
    )
    ts = ts.cast(pa.schema([(n, pa.string() if i < 2 else pa.int64()) for i, n in enumerate(names)]))
    tables = {name: pa.table({c: pa.nulls(0) for c in view.columns}) for name, view in VIEWS.items()}
    months, counts = cohort_views(ts)
    tables[ORDER_MONTHS.name], tables[COHORT_COUNTS.name] = months, counts
    manifest = Manifest(1, "run", "run", dt.datetime.now(dt.UTC), {(TOPIC, 0): W}, None, 0, 0, {})
    return BatchIndex.of_tables(manifest, tables)


def speed_store(speed: dict[tuple[str, str], set[int]]) -> EmbeddedSpeedStore:
    store = EmbeddedSpeedStore(block_size=10)
    store.move_to(TOPIC, 0, W)  # the consumer begins at W, as the real one reports before any record
    offset = 0
    for (tenant, customer), months in sorted(speed.items()):
        for m in sorted(months):
            event = validate_event(
                {
                    "event_id": f"{customer}-{m}",
                    "tenant_id": tenant,
                    "customer_id": customer,
                    "event_type": "order_placed",
                    "event_time": month_start(m, 2).isoformat(),
                    "order_id": f"o-{customer}-{m}",
                }
            )
            store.ingest(to_row(event), TOPIC, 0, W + offset, 0)  # every speed event lies above W
            offset += 1
    store.drop_below({(TOPIC, 0): W})
    return store


customers = st.sampled_from([(TENANT, f"c{i}") for i in range(8)] + [(OTHER, "c0"), (OTHER, "c1")])
month_sets = st.sets(st.integers(BASE, BASE + 14), max_size=5)


@settings(max_examples=150, deadline=None)
@given(
    batch=st.dictionaries(customers, month_sets, max_size=10),
    speed=st.dictionaries(customers, month_sets.filter(bool), max_size=6),
    idle=st.sets(customers, max_size=3),
    start=st.none() | st.integers(BASE, BASE + 14),
    end=st.none() | st.integers(BASE, BASE + 14),
)
def test_batch_counts_corrected_by_speed_equal_retention_of_merged_months(batch, speed, idle, start, end):
    index = batch_index(batch, idle)
    merger = Merger(lambda: index, speed_store(speed))
    for tenant in (TENANT, OTHER, "demo-none"):
        merged: dict[str, set[int]] = {}
        for (t, c), months in [*batch.items(), *speed.items()]:
            if t == tenant:
                merged.setdefault(c, set()).update(months)
        assert merger.cohorts(tenant, start, end) == retention(merged, start=start, end=end)


def test_a_late_order_moves_a_customer_to_an_earlier_cohort_and_empties_the_old_one():
    batch = {(TENANT, "c1"): {BASE + 3, BASE + 4}, (TENANT, "c2"): {BASE + 1}}
    index = batch_index(batch, set())
    merger = Merger(lambda: index, speed_store({(TENANT, "c1"): {BASE}}))
    assert [r["cohort"] for r in index.cohorts(TENANT).retention()] == ["2025-02", "2025-04"]  # batch alone
    assert merger.cohorts(TENANT, None, None) == [
        {"cohort": "2025-01", "size": 1, "retention": [1.0, 0.0, 0.0, 1.0, 1.0]},
        {"cohort": "2025-02", "size": 1, "retention": [1.0, 0.0, 0.0, 0.0]},
    ]

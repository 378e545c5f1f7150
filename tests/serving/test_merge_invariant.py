"""batch ⊕ speed = truth: random cuts, real Spark batch runs, the embedded speed store, the merger.

Streams carry duplicates, late and out-of-order events and three tenants. For each example a prefix of
the stream is archived and batched (W = its block cut), the speed store consumes the whole stream and
drops what W covers, and every answer of the merger equals a direct recomputation from the
deduplicated events (tests/batch/oracle.py, which shares no code with the catalog).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalytics.schemas import rfm

from ..batch import oracle
from ..batch.test_batch_job import land, landed_rows
from .lambda_stack import batch_and_speed

pytestmark = pytest.mark.integration
ROWS = landed_rows(seed=21, n_days=2)
ALL = {(r["topic"], r["partition"]): 10**9 for r in ROWS}
TRUTH = oracle.dedup(ROWS, ALL)
PROFILE = oracle.profile(TRUTH).set_index(["tenant_id", "customer_id"])


def _truth_metrics(tenant: str, customer: str) -> dict:
    p = PROFILE.loc[(tenant, customer)]
    revenue = 0 if p.revenue != p.revenue else int(p.revenue)  # NaN → 0
    refunds = 0 if p.refunds != p.refunds else int(p.refunds)
    events = TRUTH[(TRUTH.tenant_id == tenant) & (TRUTH.customer_id == customer)]
    opened = events[events.event_type == "ticket_opened"].groupby("ticket_id").event_time.min()
    replied = events[events.event_type == "agent_replied"].groupby("ticket_id").event_time.min()
    both = opened.index.intersection(replied.index)
    first_response = ((replied[both] - opened[both]).mean() / 1000) if len(both) else None
    return {
        "events_total": int(p.events_total),
        "orders": int(p.orders),
        "paid_orders": int(p.paid_orders),
        "revenue": revenue / 1e6,
        "refunds": refunds / 1e6,
        "net_revenue": (revenue - refunds) / 1e6,
        "avg_order_value": round(revenue / p.paid_orders / 1e6, 6) if p.paid_orders else None,
        "sessions": int(p.sessions),
        "open_tickets": int(p.tickets_opened - p.tickets_resolved),
        "avg_first_response_seconds": None if first_response is None else round(first_response, 3),
    }


def _batch_cuts(raw) -> dict[str, dict[str, list[float]]]:
    """Quintile cut points of the batch side's customers who ordered (linear interpolation)."""
    columns = {"r": "last_order_at", "f": "frequency", "m": "monetary"}
    return {
        tenant: {
            d: g[c].astype("float64").quantile([0.2, 0.4, 0.6, 0.8]).tolist() for d, c in columns.items()
        }
        for tenant, g in raw.groupby("tenant_id")
    }


def _truth_rfm(truth, cuts, metrics: dict, tenant: str, customer: str) -> dict:
    """Merged R/F/M scored with the batch's cuts; unscored when the customer never ordered."""
    out = {"frequency": metrics["orders"], "monetary": metrics["net_revenue"]}
    unscored = {"r": None, "f": None, "m": None, "segment": None}
    if (tenant, customer) not in truth.index:
        return {"recency_days": None, **out, **unscored}
    t = truth.loc[(tenant, customer)]
    out["recency_days"] = int(t.recency_days)
    if cuts is None:
        return {**out, **unscored}
    values = {"r": t.last_order_at, "f": t.frequency, "m": t.monetary}
    scores = {d: 1 + sum(values[d] > c for c in cuts[d]) for d in values}
    return {**out, **scores, "segment": rfm.segment(scores["r"], scores["f"])}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(fraction=st.floats(0.15, 0.95), block=st.sampled_from([1, 4, 13]))
def test_every_answer_equals_direct_recomputation(spark, workdir, fraction, block):
    data_dir = workdir.mktemp("cut")
    prefix = ROWS[: int(len(ROWS) * fraction)]
    land(data_dir, prefix, chunks=2)
    manifest, merger = batch_and_speed(spark, data_dir, ROWS, block)

    assert 0 < manifest.events < len(TRUTH)  # really split between the two sides
    now = int(TRUTH.event_time.max())
    rfm_truth = oracle.rfm_raw(TRUTH, now).set_index(["tenant_id", "customer_id"])
    cuts = _batch_cuts(oracle.rfm_raw(oracle.dedup(prefix, manifest.watermark), 0))
    for tenant, customer in PROFILE.index:
        profile = merger.profile(tenant, customer, now_ms=now)
        got = profile["metrics"]
        want = _truth_metrics(tenant, customer)
        assert {k: got[k] for k in want} == want, (tenant, customer)
        assert profile["rfm"] == _truth_rfm(rfm_truth, cuts.get(tenant), want, tenant, customer), (
            tenant,
            customer,
        )

    day = 86_400_000
    for tenant, customer in list(PROFILE.index)[:20]:
        events = TRUTH[(TRUTH.tenant_id == tenant) & (TRUTH.customer_id == customer)]
        per_day = events.groupby(events.event_time // day * day).size()
        points = merger.timeseries(tenant, customer, "events_total", 0, 2**52, day)
        assert points == [(int(ts), int(n)) for ts, n in per_day.items()]

    campaigns = (
        oracle.campaign_stats(TRUTH)
        .groupby(["tenant_id", "campaign_id"])[["impressions", "clicks", "conversions", "spend"]]
        .sum()
    )
    for (tenant, campaign), want in campaigns.iterrows():
        totals, _ = merger.campaign(tenant, campaign, 0, 2**52, day)
        assert (totals["impressions"], totals["clicks"], totals["conversions"]) == (
            want.impressions,
            want.clicks,
            want.conversions,
        )
        assert totals["spend"] == round(want.spend / 1e6, 6)

    for tenant in TRUTH.tenant_id.unique():
        expected = {(t, c): v for (t, c), v in oracle.cohorts(TRUTH).items() if t == tenant}
        got = {
            (tenant, row["cohort"]): (row["size"], row["retention"])
            for row in merger.cohorts(tenant, None, None)
        }
        assert got == expected

    orders = TRUTH[TRUTH.tenant_id == "demo-food"]
    placed = orders[orders.event_type == "order_placed"].groupby("order_id").event_time.min()
    delivered = orders[orders.event_type == "order_delivered"].groupby("order_id").event_time.min()
    waits = sorted((delivered[i] - placed[i]) for i in delivered.index.intersection(placed.index))
    live = merger.live_orders("demo-food", window_ms=10 * day, now_ms=int(TRUTH.event_time.max()))
    assert live["avg_wait_seconds"] == round(sum(waits) / len(waits) / 1000, 3)

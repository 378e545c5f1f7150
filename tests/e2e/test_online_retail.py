"""Real data end to end: the complete UCI Online Retail file through broker, archiver, Spark, speed store
and API, compared with an independent pandas computation from the raw file — once with the batch cut in
the middle of the file (half batch, half speed) and once with everything batched."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lambdalytics.batch.archiver import Archiver
from lambdalytics.batch.job import run_batch
from lambdalytics.cli.sources.online_retail import load_events
from lambdalytics.cli.sources.pacing import send_paced
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.infra.settings import Settings
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.consumer import SpeedConsumer
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from ..serving.strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

FILE = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "online_retail" / "online_retail.parquet"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.dataset,
    pytest.mark.skipif(not FILE.exists(), reason=f"UCI Online Retail not found at {FILE} (shared/datasets)"),
]
DAY = 86_400_000


def ground_truth() -> tuple[pd.DataFrame, dict]:
    """Per customer, straight from the raw file: no code shared with the pipeline."""
    raw = pd.read_parquet(FILE)
    raw["micros"] = [
        int(Decimal(repr(p)) * 1_000_000) * q for p, q in zip(raw.UnitPrice, raw.Quantity, strict=True)
    ]
    raw["customer"] = raw.CustomerID.where(raw.CustomerID.notna(), "guest-" + raw.InvoiceNo)
    utc = raw.InvoiceDate.dt.tz_localize("Europe/London").dt.tz_convert("UTC")
    raw["ms"] = (utc - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(milliseconds=1)
    inv = raw.groupby("InvoiceNo").agg(
        customer=("customer", "first"), micros=("micros", "sum"), ms=("ms", "min")
    )
    inv["cancel"] = inv.index.str.startswith("C")
    orders = inv[~inv.cancel]
    paid = orders[orders.micros >= 0]  # A563186/7 (negative) are dead-lettered by the contract
    refunds = inv[inv.cancel]
    out = pd.DataFrame(index=inv.customer.unique())
    out["orders"] = orders.groupby("customer").size()
    out["paid_orders"] = paid.groupby("customer").size()
    out["revenue"] = paid.groupby("customer").micros.sum()
    out["refunds"] = -refunds.groupby("customer").micros.sum()
    out["first_seen"] = inv.groupby("customer").ms.min()
    out["last_order_at"] = orders.groupby("customer").ms.max()
    out = out.fillna(0).astype("int64")
    # cohorts: first order month, share ordering in each later month
    orders = orders.assign(month=pd.to_datetime(orders.ms, unit="ms").dt.to_period("M"))
    first = orders.groupby("customer").month.min()
    last = orders.month.max()
    active = orders.groupby("customer").month.agg(set)
    cohorts = {}
    for cohort, members in first.groupby(first):
        shares = [
            round(sum((cohort + k) in active[c] for c in members.index) / len(members), 6)
            for k in range((last - cohort).n + 1)
        ]
        cohorts[str(cohort)] = (len(members), shares)
    return out, cohorts


def check_api(client: TestClient, headers: dict, truth: pd.DataFrame, cohorts: dict) -> int:
    mismatches = []
    for customer, want in truth.iterrows():
        r = client.get(f"/v1/customers/{customer}/profile", headers=headers)
        assert r.status_code == 200, (customer, r.text)
        body = r.json()
        m, rfm = body["metrics"], body["rfm"]
        got = {
            "orders": m["orders"],
            "paid_orders": m["paid_orders"],
            "revenue": round(m["revenue"] * 100),
            "refunds": round(m["refunds"] * 100),
            "net_revenue": round(m["net_revenue"] * 100),
            # the API shows 6 decimals: equal to the exact ratio within half a unit of the 6th decimal
            "avg_order_value": None if m["avg_order_value"] is None else round(m["avg_order_value"], 6),
            "first_seen": pd.Timestamp(m["first_seen"]).value // 1_000_000,
            "last_order_at": None
            if m["last_order_at"] is None
            else pd.Timestamp(m["last_order_at"]).value // 1_000_000,
            "frequency": rfm["frequency"],
            "monetary": round(rfm["monetary"] * 100),
            "recency_days": rfm["recency_days"],
        }
        as_of = pd.Timestamp(body["freshness"]["as_of"]).value // 1_000_000
        expected = {
            "orders": want.orders,
            "paid_orders": want.paid_orders,
            "revenue": round(want.revenue / 10_000),  # cents (3-decimal unit prices exist: totals are
            "refunds": round(want.refunds / 10_000),  # exact in micros, compared here to the cent)
            "net_revenue": round((want.revenue - want.refunds) / 10_000),
            "avg_order_value": round(want.revenue / want.paid_orders / 1e6, 6) if want.paid_orders else None,
            "first_seen": want.first_seen,
            "last_order_at": want.last_order_at if want.orders else None,
            "frequency": want.orders,
            "monetary": round((want.revenue - want.refunds) / 10_000),
            "recency_days": (as_of - want.last_order_at) // DAY if want.orders else None,
        }
        # the server's clock was read just before as_of: a day boundary may fall between the two
        if want.orders and got["recency_days"] == (as_of - 1000 - want.last_order_at) // DAY:
            expected["recency_days"] = got["recency_days"]
        if got != expected:
            mismatches.append((customer, {k: (got[k], expected[k]) for k in got if got[k] != expected[k]}))
    assert not mismatches, mismatches[:3]
    r = client.get("/v1/cohorts/retention", headers=headers)
    assert {c["cohort"]: (c["size"], c["retention"]) for c in r.json()["cohorts"]} == cohorts
    return len(truth)


def check_api_eventually(client, headers, truth, cohorts, timeout_s: float = 120.0) -> int:
    """check_api until it passes: the speed consumer's "caught up" is a hint (a poll that returned
    less than a full batch), not proof that every acknowledged event is applied."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check_api(client, headers, truth, cohorts)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def test_online_retail_through_the_whole_pipeline(kafka_bootstrap, tmp_path, spark):
    truth, cohorts = ground_truth()
    events, summary = load_events(FILE)
    assert summary.total_rejected == 2
    ensure_topics(kafka_bootstrap, 6)
    settings = Settings(
        data_dir=tmp_path,
        block_size=100,
        admin_token=ADMIN_TOKEN,
        token_secret=TOKEN_SECRET,
        rate_limit_per_s=1e6,
        rate_limit_burst=10**6,
    )
    store = EmbeddedSpeedStore(block_size=100, dedup_window_ms=365 * DAY)
    state = ServingState(settings, store, bootstrap=kafka_bootstrap)
    client = TestClient(create_app(state))
    key = client.post(
        "/v1/admin/tenants",
        json={"tenant_id": "online-retail", "name": "UCI"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    half = len(events) // 2
    consumer = SpeedConsumer(store, kafka_bootstrap).start()
    try:
        with EventProducer(kafka_bootstrap) as producer:
            first_half = send_paced(events[:half], producer, show_progress=False)
        Archiver(kafka_bootstrap, tmp_path, max_batch_seconds=1).run(idle_exit_seconds=2)
        first = run_batch(settings, spark=spark, show_progress=False)
        state.loader.refresh()
        with EventProducer(kafka_bootstrap) as producer:
            second_half = send_paced(events[half:], producer, show_progress=False)
            send_paced(events[:1000], producer, show_progress=False)  # a replayed stretch: duplicates
        acked = time.time()  # every event is acknowledged by now; wait until the store caught up after it
        deadline = time.monotonic() + 120
        while time.time() - store.status().lag_ms / 1000 <= acked and time.monotonic() < deadline:
            time.sleep(0.2)
        assert 0 < first.events < len(events) - 2  # really half batch, half speed
        # the two negative bad-debt adjustments, refused by the producer's contract check, nothing else
        rejected = first_half.rejected + second_half.rejected
        assert rejected == {("events.transaction", "contract_violation"): 2}
        check_api_eventually(client, headers, truth, cohorts)

        Archiver(kafka_bootstrap, tmp_path, max_batch_seconds=1).run(idle_exit_seconds=2)
        second = run_batch(settings, spark=spark, show_progress=False)
        state.loader.refresh()
        assert second.batch_version == 2 and second.events > first.events
        assert check_api_eventually(client, headers, truth, cohorts) == len(truth)
    finally:
        consumer.stop()
        state.close()

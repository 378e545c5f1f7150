"""A documented run on real data: UCI Online Retail replayed through the embedded pipeline.

    python bench/real_data.py [--path ../shared/datasets/online_retail/online_retail.parquet]

Times the replay (producer → Kafka), the archive, the Spark batch run and the first API answer, and
writes docs/real-data.md with the mapping summary, rejected rows, the top of the cohort table and the
RFM segment sizes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path

from fastapi.testclient import TestClient

from lambdalytics.batch.archiver import Archiver
from lambdalytics.batch.job import run_batch
from lambdalytics.cli.sources.online_retail import load_events
from lambdalytics.cli.sources.pacing import send_paced
from lambdalytics.infra.broker import EmbeddedBroker
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.infra.settings import Settings
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.embedded import EmbeddedSpeedStore

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "datasets" / "online_retail" / "online_retail.parquet"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", type=Path, default=DEFAULT)
    path = parser.parse_args().path
    t = time.perf_counter()
    events, summary = load_events(path)
    load_s = time.perf_counter() - t
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        ensure_topics(broker.bootstrap, 6)
        t = time.perf_counter()
        with EventProducer(broker.bootstrap) as producer:
            sent = send_paced(events, producer, show_progress=False)
        replay_s = time.perf_counter() - t
        t = time.perf_counter()
        stats = Archiver(broker.bootstrap, tmp).run(idle_exit_seconds=2)
        archive_s = time.perf_counter() - t - 2
        settings = Settings(
            data_dir=tmp,
            block_size=1,
            admin_token=secrets.token_urlsafe(32),
            token_secret=secrets.token_urlsafe(32),
        )
        t = time.perf_counter()
        manifest = run_batch(settings, show_progress=False)
        batch_s = time.perf_counter() - t
        state = ServingState(settings, EmbeddedSpeedStore(block_size=1))
        t = time.perf_counter()
        state.loader.refresh()
        client = TestClient(create_app(state))
        key = state.credentials.registry.create("online-retail", "UCI")
        h = {"Authorization": f"Bearer {key}"}
        first = client.get("/v1/customers/17850/profile", headers=h)
        first_s = time.perf_counter() - t
        cohorts = client.get("/v1/cohorts/retention", headers=h).json()["cohorts"]
        served = state.loader.current()
        segments = Counter(
            segment
            for tenant, customer in served.customers()
            if not customer.startswith("guest-")
            and (segment := state.merger.profile(tenant, customer)["rfm"]["segment"]) is not None
        )
        profile = first.json()["metrics"]
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    lines = [
        "# Real data: UCI Online Retail, end to end",
        "",
        "Chen, D. (2015). *Online Retail* [Dataset]. UCI Machine Learning Repository, "
        "https://doi.org/10.24432/C5BW33 — CC BY 4.0. 541,909 invoice lines of a UK online retailer, "
        "2010-12-01..2011-12-09 (`../shared/datasets/online_retail/`).",
        "",
        "## How to replay",
        "",
        "```bash",
        "make run   # or: .venv/bin/lambdalytics broker & (and the archiver/API as you need)",
        ".venv/bin/lambdalytics replay online-retail --path ../shared/datasets/online_retail/online_retail.parquet",
        ".venv/bin/lambdalytics replay online-retail --path FILE --tenant-by country   # 38 tenants",
        ".venv/bin/lambdalytics replay online-retail --path 'Online Retail.xlsx' --speedup 86400  # a day per second",
        "```",
        "",
        "## Mapping (`cli/sources/online_retail.py`)",
        "",
        "- One invoice → `order_placed` + `order_paid` (amount = Σ Quantity × UnitPrice, exact, GBP); a `C…` "
        "invoice → `refund` of |Σ|; the invoice time is Europe/London wall-clock time converted to UTC "
        "(BST-aware); `event_id = uci-online-retail:<tenant>:<InvoiceNo>:<event_type>`, so a second replay "
        "changes no answer.",
        "- Lines without CustomerID: a guest customer per invoice, `guest-<InvoiceNo>`.",
        "- `--tenant-by country`: tenant `online-retail.<country-slug>` (38 tenants).",
        "",
        f"Run of {today}: {summary.lines:,} lines → {summary.invoices:,} invoices → {summary.total_events:,} events "
        f"({dict(summary.events)}); {summary.guest_invoices:,} guest invoices.",
        "",
        "## Rejected rows, and why",
        "",
        f"{summary.total_rejected} events were rejected by the same contract every producer goes through and "
        "dead-lettered with their reason (nothing is bent to fit, nothing dropped silently):",
        "",
    ]
    for r in summary.rejections:
        lines.append(f"- `{r.order_id}` {r.event_type}: {r.reason} — {r.message}")
    lines += [
        "",
        "These are the two “Adjust bad debt” invoices with a negative unit price (−11,062.06); their "
        "`order_placed` is valid, so they count as orders never paid.",
        "",
        "## Timings (2 cores, embedded broker, Spark local[*])",
        "",
        "| step | seconds | rate |",
        "|---|---:|---:|",
        f"| read + map the file | {load_s:.1f} | {summary.lines / load_s:,.0f} lines/s |",
        f"| replay: validate + produce to Kafka (acks=all) | {replay_s:.1f} | {sent.total_sent / replay_s:,.0f} events/s |",
        f"| archive into the Delta master dataset | {archive_s:.1f} | {stats.rows / archive_s:,.0f} events/s |",
        f"| Spark batch run (all views, publish) | {batch_s:.1f} | {manifest.events / batch_s:,.0f} events/s |",
        f"| load the batch version + first API answer | {first_s:.2f} | — |",
        "",
        f"Customer 17850 (the file's first customer): {profile['orders']} orders, revenue £{profile['revenue']:,.2f}, "
        f"refunds £{profile['refunds']:,.2f}, first seen {profile['first_seen']}.",
        "",
        "## Cohort retention (top of the table)",
        "",
        "Cohort = month of the first order; cell k = share of the cohort ordering in month k. December 2011 "
        "is partial (the data stops on the 9th). Guest checkouts are one customer per invoice, so each is a "
        "one-order customer of its month: they are part of the cohort sizes and lower the retention shares.",
        "",
        "| cohort | size | m0 | m1 | m2 | m3 | m4 | m5 | m6 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cohorts[:6]:
        cells = [f"{x:.0%}" for x in c["retention"][:7]] + [""] * (7 - min(7, len(c["retention"])))
        lines.append(f"| {c['cohort']} | {c['size']:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## RFM segments (registered customers, scored at the batch watermark)",
        "",
        "| segment | customers |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {n:,} |" for name, n in segments.most_common()]
    lines += [
        "",
        "## Proof",
        "",
        "`tests/e2e/test_online_retail.py` replays the whole file through the embedded broker, the archiver, a "
        "Spark batch run and the speed store, and compares every customer's `orders`, `paid_orders`, "
        "`revenue`, `refunds`, `net_revenue`, `avg_order_value`, `first_seen`, `last_order_at`, the RFM raw "
        "values and the tenant's cohort table through the API with a pandas computation from the raw file "
        "(exact for counts, sums in cents) — first with the batch cut in the middle of the file (half batch, "
        "half speed, plus a replayed stretch of duplicates), then with everything batched.",
        "",
    ]
    (ROOT / "docs" / "real-data.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

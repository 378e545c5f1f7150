"""Serving store benchmark: per-request cost of live orders and cohorts as the history grows, memory of
two API workers per customer, and publication → served.

    python bench/serving_store.py --orders 10000 --orders 100000 --orders 1000000 \
        --customers 100000 --customers 1000000

In process, one thread, the project's own ``BatchIndex`` and ``Merger`` (the issue's measurement), on
synthetic views of one food-delivery tenant written straight into the serving store (no Spark: the
views' shape is what the batch publishes — a profile, an order hour and an order state per order, order
months, the cohort table). A year of orders ends at the build clock; 1 in 200 is still open. The speed
side is the embedded store with 200 order events above W (about an hour of a 1 M-orders-a-year tenant),
the same at every size, so corrections are exercised and the history is the only thing that grows.

Memory: two worker processes each open the store, read 20,000 random profiles, time series and the two
tenant routes, and report their anonymous (private heap) growth; the store's used pages are counted
once, since every worker maps the same file through the page cache. Publication → served: the views
are written to Delta (``ViewWriter``), the store built, the manifest published, and a ``BatchLoader``
is timed from its poll to the swap. Appends a section to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from report import write_section

from lambdalytics.batch.writer import Manifest, ViewWriter
from lambdalytics.infra.serving_store import ServingStore, build, store_path
from lambdalytics.schemas.cohorts import CohortCounts
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.schemas.views import (
    CAMPAIGN_STATS,
    CUSTOMER_PROFILE,
    CUSTOMER_TIMESERIES,
    ENTITY_STATES,
    ORDER_MONTHS,
    RFM_THRESHOLDS,
    VIEWS,
)
from lambdalytics.serving.index import BatchIndex
from lambdalytics.serving.loader import BatchLoader
from lambdalytics.serving.merge import Merger
from lambdalytics.speed.embedded import EmbeddedSpeedStore

TENANT = "demo-food"
TOPIC = "events.transaction"
B = 1000
W = 10 * B
HOUR = 3600_000
YEAR = 365 * 24 * HOUR
NOW = int(dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp() * 1000)
ORDERS_PER_CUSTOMER = 3
WINDOW_MS = 30 * 60_000  # the API's default window
SPEED_EVENTS = 200  # ~ an hour of this tenant's order events at 1 M orders a year: what W leaves
OLD = {  # main, measured in the issue (ms per request)
    "live": {10_000: 24, 100_000: 286, 1_000_000: 4740},
    "cohorts": {10_000: 4, 100_000: 84, 1_000_000: 1875},
}
ORDER = ENTITY_STATES["order"]


def _month(ms: np.ndarray) -> np.ndarray:
    return ms.astype("datetime64[ms]").astype("datetime64[M]").astype("int64")


def views(orders: int, seed: int = 7) -> dict[str, pa.Table]:
    """One tenant's views for ``orders`` orders of history (``orders / 3`` customers)."""
    rng = np.random.default_rng(seed)
    customers = max(1, orders // ORDERS_PER_CUSTOMER)
    ids = np.array([f"c{i:08d}" for i in range(customers)], dtype=object)
    who = rng.integers(0, customers, orders)
    placed = NOW - rng.integers(0, YEAR, orders)
    wait = rng.integers(10 * 60_000, 90 * 60_000, orders)
    open_ = rng.random(orders) < 0.005
    delivered = np.where(open_, -1, placed + wait)
    tenant = pa.array([TENANT] * orders)
    # order_state
    state = {
        "tenant_id": tenant,
        "customer_id": pa.array(ids[who]),
        "order_id": pa.array([f"o{i:09d}" for i in range(orders)]),
        "placed": pa.array(placed),
        "delivered": pa.array(delivered, mask=open_),
        "cancelled": pa.nulls(orders, pa.int64()),
    }
    # customer_timeseries: one hour per order (collisions within a customer's hour are rare enough)
    hour = placed - placed % HOUR
    ts = pa.table({"tenant_id": tenant, "customer_id": pa.array(ids[who]), "hour": pa.array(hour)})
    for name in CUSTOMER_TIMESERIES.values:
        ts = ts.append_column(name, pa.array(np.ones(orders, dtype="int64")))
    ts = ts.group_by(["tenant_id", "customer_id", "hour"]).aggregate(
        [(n, "sum") for n in CUSTOMER_TIMESERIES.values]
    )
    ts = _sums_named(ts)
    # customer_profile: 16 integer states per customer who ordered
    ordered = np.unique(who)
    profile = {"tenant_id": pa.array([TENANT] * len(ordered)), "customer_id": pa.array(ids[ordered])}
    for i, name in enumerate(CUSTOMER_PROFILE.values):
        profile[name] = pa.array(rng.integers(0, 10**6 * (i + 1), len(ordered)))
    # order months and the cohort table
    months: dict[int, set[int]] = {}
    for c, m in zip(who.tolist(), _month(placed).tolist(), strict=True):
        months.setdefault(c, set()).add(m)
    table = CohortCounts.of({str(c): ms for c, ms in months.items()})
    keys = sorted(months)
    order_months = pa.table(
        {
            "tenant_id": pa.array([TENANT] * len(keys)),
            "customer_id": pa.array(ids[keys]),
            "first_month": pa.array([min(months[c]) for c in keys], pa.int64()),
            "months": pa.array([sorted(months[c]) for c in keys], pa.list_(pa.int64())),
        }
    )
    rows = list(table.rows())
    cohorts = pa.table(
        {
            "tenant_id": pa.array([TENANT] * len(rows)),
            "cohort": pa.array([r[0] for r in rows], pa.int64()),
            "size": pa.array([r[1] for r in rows], pa.int64()),
            "active": pa.array([r[2] for r in rows], pa.list_(pa.int64())),
        }
    )
    cuts = pa.list_(pa.float64())
    out = {
        CUSTOMER_PROFILE.name: pa.table(profile),
        CUSTOMER_TIMESERIES.name: ts,
        ORDER.name: pa.table(state),
        ORDER_MONTHS.name: order_months,
        "cohort_counts": cohorts,
        RFM_THRESHOLDS.name: pa.table(
            {
                "tenant_id": pa.array([TENANT]),
                "customers": pa.array([len(ordered)], pa.int64()),
                **{c: pa.array([[1.0, 2.0, 3.0, 4.0]], cuts) for c in RFM_THRESHOLDS.values[1:]},
            }
        ),
    }
    for name, view in VIEWS.items():  # views this tenant does not use: typed, empty
        if name not in out:
            types = [pa.string()] * (len(view.keys) - (1 if view is CAMPAIGN_STATS else 0))
            types += [pa.int64()] * (len(view.columns) - len(types))
            out[name] = pa.table({c: pa.array([], t) for c, t in zip(view.columns, types, strict=True)})
    return out


def _sums_named(ts: pa.Table) -> pa.Table:
    """Arrow names a group-by's sums ``<column>_sum`` and puts the keys last: back to the view's columns."""
    names = {f"{n}_sum": n for n in CUSTOMER_TIMESERIES.values}
    ts = ts.rename_columns([names.get(n, n) for n in ts.column_names])
    return ts.select(list(CUSTOMER_TIMESERIES.columns))


def speed_store(customers: int, seed: int = 11) -> EmbeddedSpeedStore:
    """The speed side above W: order events of recent orders (new ones, and deliveries)."""
    rng = random.Random(seed)
    store = EmbeddedSpeedStore(block_size=B)
    store.move_to(TOPIC, 0, W)
    for i in range(SPEED_EVENTS):
        customer = f"c{rng.randrange(customers + 100):08d}"
        kind = "order_placed" if i % 2 == 0 else "order_delivered"
        event = {
            "event_id": f"s{i}",
            "tenant_id": TENANT,
            "customer_id": customer,
            "event_type": kind,
            "event_time": NOW - rng.randrange(0, 20 * 60_000),
            "order_id": f"s{i - i % 2}",
        }
        store.ingest(to_row(validate_event(event)), TOPIC, 0, W + i, NOW)
    store.drop_below({(TOPIC, 0): W})
    return store


def _manifest(version: int = 1) -> Manifest:
    return Manifest(version, "bench", "run", dt.datetime.now(dt.UTC), {(TOPIC, 0): W}, None, 0, 0, {}, B)


def per_request(fn, seconds: float = 0.5, rounds: int = 5) -> float:
    """Mean ms per call in the best of ``rounds`` rounds of at least ``seconds`` each (after a warm-up
    call): on a shared box the other work only ever adds time, so the best round is the route's cost."""
    fn()
    best = math.inf
    for _ in range(rounds):
        n, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds or n < 5:
            fn()
            n += 1
        best = min(best, elapsed / n * 1000)
    return best


def latency_rows(sizes: list[int]) -> tuple[list[str], dict]:
    got: dict[str, dict[int, float]] = {"live": {}, "cohorts": {}}
    disk = {}
    for orders in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            tables = views(orders)
            path = build(Path(tmp) / "s.lmdb", tables, now_ms=NOW)
            built = time.perf_counter() - t
            index = BatchIndex(_manifest(), ServingStore.open(path))
            merger = Merger(lambda index=index: index, speed_store(orders // ORDERS_PER_CUSTOMER))
            got["live"][orders] = per_request(lambda m=merger: m.live_orders(TENANT, WINDOW_MS, NOW))
            got["cohorts"][orders] = per_request(lambda m=merger: m.cohorts(TENANT, None, None))
            disk[orders] = index.store.used_bytes()
            print(
                f"{orders:,} orders: views+build {built:.1f}s, live {got['live'][orders]:.3f} ms, "
                f"cohorts {got['cohorts'][orders]:.3f} ms, store {disk[orders] / 1e6:.1f} MB",
                flush=True,
            )
    lines = [
        "| orders of history | customers | live orders ms/request (main) | ratio | cohorts ms/request (main) | ratio | store on disk |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ratio(old: float | None, new: float) -> str:
        return f"{old / new:,.0f}× faster" if old else "–"

    for orders in sizes:
        live, cohorts = got["live"][orders], got["cohorts"][orders]
        old_l, old_c = OLD["live"].get(orders), OLD["cohorts"].get(orders)
        lines.append(
            f"| {orders:,} | {orders // ORDERS_PER_CUSTOMER:,} | {live:.2f} ({old_l or '–'}) | "
            f"{ratio(old_l, live)} | {cohorts:.2f} ({old_c or '–'}) | {ratio(old_c, cohorts)} | "
            f"{disk[orders] / 1e6:,.1f} MB |"
        )
    if len(sizes) > 1:
        slopes = {k: _slope(sizes, [got[k][s] for s in sizes]) for k in got}
        lines += [
            "",
            f"Log-log slope of ms/request against orders: live orders {slopes['live']:.3f}, cohorts "
            f"{slopes['cohorts']:.3f} (main: {_slope(list(OLD['live']), list(OLD['live'].values())):.2f} "
            f"and {_slope(list(OLD['cohorts']), list(OLD['cohorts'].values())):.2f}).",
        ]
    return lines, got


def _slope(xs: list[int], ys: list[float]) -> float:
    lx, ly = np.log(np.array(xs, float)), np.log(np.array(ys, float))
    return float(np.polyfit(lx, ly, 1)[0])


# ------------------------------------------------------------------------------------------ memory


def _anonymous_kib() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1])
    raise RuntimeError("no Anonymous: line in /proc/self/smaps_rollup")


def worker(path: str, customers: int) -> None:
    """One API worker's share: open the store, serve a mix of reads, report the private heap growth."""
    import gc

    gc.collect()
    before = _anonymous_kib()
    index = BatchIndex(_manifest(), ServingStore.open(Path(path)))
    merger = Merger(lambda: index, EmbeddedSpeedStore(block_size=B), profile_cache=0)
    merger.speed.move_to(TOPIC, 0, W)
    merger.speed.drop_below({(TOPIC, 0): W})
    rng = random.Random()
    for _ in range(20_000):
        customer = f"c{rng.randrange(customers):08d}"
        index.profile(TENANT, customer)
        index.customer_hours(TENANT, customer, NOW - YEAR, NOW)
    merger.live_orders(TENANT, WINDOW_MS, NOW)
    merger.cohorts(TENANT, None, None)
    gc.collect()
    print(json.dumps({"anonymous_kib": _anonymous_kib() - before}))


def memory_rows(sizes: list[int]) -> list[str]:
    lines = [
        "| customers | store pages (shared by all workers) | private heap, worker 1 + worker 2 | total per customer |",
        "|---:|---:|---:|---:|",
    ]
    for customers in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = build(Path(tmp) / "s.lmdb", views(customers * ORDERS_PER_CUSTOMER), now_ms=NOW)
            store = ServingStore.open(path)
            shared = store.used_bytes()
            heaps = []
            for _ in range(2):
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", str(path), str(customers)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                heaps.append(json.loads(out.strip().splitlines()[-1])["anonymous_kib"] * 1024)
            total = shared + sum(heaps)
            lines.append(
                f"| {customers:,} | {shared / 1e6:,.1f} MB | {heaps[0] / 1e6:,.1f} + {heaps[1] / 1e6:,.1f} MB | "
                f"{total / customers:,.0f} B |"
            )
            print(lines[-1], flush=True)
    return lines


def publication_rows(customers: int) -> list[str]:
    """Delta views written, the store built (the batch run's last step), the manifest published; then a
    loader's poll → swap, which is what publication → served costs."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        tables = views(customers * ORDERS_PER_CUSTOMER)
        writer = ViewWriter(data_dir)
        t = time.perf_counter()
        for name, table in tables.items():
            writer.write(name, table)
        delta_s = time.perf_counter() - t
        t = time.perf_counter()
        build(store_path(data_dir, 1), tables)
        build_s = time.perf_counter() - t
        writer.publish(
            previous=None,
            watermark={(TOPIC, 0): W},
            block_size=B,
            watermark_time=None,
            master_version=0,
            events=0,
        )
        speed = EmbeddedSpeedStore(block_size=B)
        speed.move_to(TOPIC, 0, 0)
        loader = BatchLoader(data_dir, speed)
        t = time.perf_counter()
        assert loader.refresh() and loader.current().version == 1
        served_s = time.perf_counter() - t
    return [
        f"At {customers:,} customers ({customers * ORDERS_PER_CUSTOMER:,} orders): views written to Delta "
        f"in {delta_s:.1f} s (delta-rs, straight from Arrow, no Spark), the serving store built in "
        f"{build_s:.1f} s — both before the manifest commit — and **publication → served "
        f"{served_s * 1000:.1f} ms** (a loader's poll reads the manifest pointer, opens the store, swaps)."
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, action="append")
    parser.add_argument("--customers", type=int, action="append")
    parser.add_argument("--worker", nargs=2)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    orders = args.orders or [10_000, 100_000, 1_000_000]
    customers = args.customers or [100_000, 1_000_000]
    latency, _ = latency_rows(orders)
    memory = memory_rows(customers)
    publication = publication_rows(max(customers))
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    write_section(
        [
            "",
            "## Serving store: live orders and cohorts as history grows, memory per customer",
            "",
            f"_{today}, `python bench/serving_store.py`, load average {os.getloadavg()[0]:.1f} on 2 cores — "
            "in process, one thread, `BatchIndex` + `Merger` "
            "over the memory-mapped serving store; one food-delivery tenant, a year of orders, 3 orders per "
            f"customer, {SPEED_EVENTS:,} speed events above W, the API's default 30 min window. Synthetic "
            'views are written straight into the store (no Spark). "main" is the figure measured before '
            "the store (the issue's table). ms/request: the mean in the best of 5 rounds of 0.5 s._",
            "",
            *latency,
            "",
            "Resident memory of two API workers: the store's used pages, mapped by both through the page "
            "cache and counted once, plus each worker's private (anonymous) heap growth after opening the "
            "store and serving 20,000 random profiles and time series and both tenant routes (main: "
            "6.4 KiB per customer for two workers).",
            "",
            *memory,
            "",
            *publication,
            "",
        ]
    )


if __name__ == "__main__":
    main()

"""Serving store benchmark: per-request cost of live orders and cohorts as the history grows, memory of
two API workers per customer, and publication → served.

    python bench/serving_store.py --orders 10000 --orders 100000 --orders 1000000 \
        --customers 100000 --customers 1000000 --customers 10000000

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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from report import write_section

from lambdalytics.batch.writer import Manifest, ViewWriter
from lambdalytics.infra.serving_store import ServingStore, build, store_path
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
MAIN_BUILD_S_PER_M = (
    53.3  # main's build, row by row in Python, at 1 M customers (docs/benchmarks.md, 2026-12-02)
)


def _month(ms: np.ndarray) -> np.ndarray:
    return ms.astype("datetime64[ms]").astype("datetime64[M]").astype("int64")


def _ids(prefix: str, n: int, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def views(orders: int, seed: int = 7) -> dict[str, pa.Table]:
    """One tenant's views for ``orders`` orders of history (``orders / 3`` customers, each with at least
    one order), generated column-wise with numpy and Arrow so that 10 M customers take minutes, not hours."""
    rng = np.random.default_rng(seed)
    customers = max(1, orders // ORDERS_PER_CUSTOMER)
    ids = _ids("c", customers, 8)
    who = np.concatenate([np.arange(customers), rng.integers(0, customers, orders - customers)])
    placed = NOW - rng.integers(0, YEAR, orders)
    wait = rng.integers(10 * 60_000, 90 * 60_000, orders)
    open_ = rng.random(orders) < 0.005
    delivered = np.where(open_, -1, placed + wait)
    tenant = pa.repeat(TENANT, orders)
    buyer = ids.take(pa.array(who))
    state = {
        "tenant_id": tenant,
        "customer_id": buyer,
        "order_id": _ids("o", orders, 9),
        "placed": pa.array(placed),
        "delivered": pa.array(delivered, mask=open_),
        "cancelled": pa.nulls(orders, pa.int64()),
    }
    # customer_timeseries: one order per order hour, every base counting the orders of that hour
    hour = placed - placed % HOUR
    ts = pa.table({"tenant_id": tenant, "customer_id": buyer, "hour": pa.array(hour)})
    ts = ts.group_by(["tenant_id", "customer_id", "hour"]).aggregate([("hour", "count")])
    count = ts.column("hour_count")
    ts = pa.table(
        {
            **{k: ts.column(k) for k in CUSTOMER_TIMESERIES.keys},
            **dict.fromkeys(CUSTOMER_TIMESERIES.values, count),
        }
    )
    # customer_profile: 16 integer states per customer
    profile = {"tenant_id": pa.repeat(TENANT, customers), "customer_id": ids}
    for i, name in enumerate(CUSTOMER_PROFILE.values):
        profile[name] = pa.array(rng.integers(0, 10**6 * (i + 1), customers))
    order_months, cohorts = _months_and_cohorts(ids, who, _month(placed))
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
                "customers": pa.array([customers], pa.int64()),
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


def _months_and_cohorts(ids: pa.Array, who: np.ndarray, month: np.ndarray) -> tuple[pa.Table, pa.Table]:
    """The order-months view and the cohort table (``CohortCounts.rows``) from (customer, month) pairs."""
    base = int(month.min())
    pairs = np.unique(who.astype(np.int64) * 4096 + (month - base))
    customer, months = pairs // 4096, pairs % 4096 + base
    starts = np.flatnonzero(np.r_[True, customer[1:] != customer[:-1]])
    first = months[starts]  # pairs are sorted by customer, then month
    order_months = pa.table(
        {
            "tenant_id": pa.repeat(TENANT, len(starts)),
            "customer_id": ids.take(pa.array(customer[starts])),
            "first_month": pa.array(first),
            "months": pa.ListArray.from_arrays(
                pa.array(np.r_[starts, len(pairs)].astype(np.int32)), pa.array(months)
            ),
        }
    )
    cohort_of = np.repeat(first, np.diff(np.r_[starts, len(pairs)]))
    latest = int(months.max())
    span = latest - base + 1
    active = np.bincount((cohort_of - base) * span + (months - cohort_of), minlength=span * span).reshape(
        span, span
    )
    sizes = np.bincount(first - base, minlength=span)
    rows = [
        (base + c, int(sizes[c]), active[c, : latest - base - c + 1].tolist())
        for c in range(span)
        if sizes[c]
    ]
    cohorts = pa.table(
        {
            "tenant_id": pa.array([TENANT] * len(rows)),
            "cohort": pa.array([r[0] for r in rows], pa.int64()),
            "size": pa.array([r[1] for r in rows], pa.int64()),
            "active": pa.array([r[2] for r in rows], pa.list_(pa.int64())),
        }
    )
    return order_months, cohorts


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


def _workers(path: Path, customers: int) -> list[int]:
    """Private heap growth (bytes) of two worker processes over the same store file."""
    heaps = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, __file__, "--worker", str(path), str(customers)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        heaps.append(json.loads(out.strip().splitlines()[-1])["anonymous_kib"] * 1024)
    return heaps


def _served_ms(data_dir: Path, repeats: int = 5) -> float:
    """Median of fresh loaders' poll → swap (reads the manifest pointer, opens the store, swaps)."""
    times = []
    for _ in range(repeats):
        speed = EmbeddedSpeedStore(block_size=B)
        speed.move_to(TOPIC, 0, 0)
        loader = BatchLoader(data_dir, speed)
        t = time.perf_counter()
        assert loader.refresh() and loader.current().version == 1
        times.append((time.perf_counter() - t) * 1000)
        del loader, speed
    return statistics.median(times)


def scale_point(customers: int) -> dict:
    """One size: views → Delta, the store built (the batch run's last step), the manifest published, a
    loader's poll → swap timed, then two API workers' memory over that version's store."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        data_dir = Path(tmp)
        tables = views(customers * ORDERS_PER_CUSTOMER)
        writer = ViewWriter(data_dir)
        t = time.perf_counter()
        for name, table in tables.items():
            writer.write(name, table)
        delta_s = time.perf_counter() - t
        t, cpu = time.perf_counter(), time.process_time()
        path = build(store_path(data_dir, 1), tables)
        build_s, build_cpu_s = time.perf_counter() - t, time.process_time() - cpu
        del tables
        writer.publish(
            previous=None,
            watermark={(TOPIC, 0): W},
            block_size=B,
            watermark_time=None,
            master_version=0,
            events=0,
        )
        served_ms = _served_ms(data_dir)
        shared = ServingStore.open(path).used_bytes()
        heaps = _workers(path, customers)
    point = {
        "customers": customers,
        "delta_s": delta_s,
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,
        "served_ms": served_ms,
        "shared": shared,
        "heaps": heaps,
        "per_customer": (shared + sum(heaps)) / customers,
    }
    print(json.dumps(point), flush=True)
    return point


def scale_rows(sizes: list[int]) -> list[str]:
    points = [scale_point(c) for c in sizes]
    lines = [
        "| customers | orders | store build s (CPU s) | build CPU µs per customer | views → Delta s | "
        "publication → served ms | store pages (shared by all workers) | private heap, worker 1 + worker 2 | "
        "total per customer |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        c = p["customers"]
        lines.append(
            f"| {c:,} | {c * ORDERS_PER_CUSTOMER:,} | {p['build_s']:.1f} ({p['build_cpu_s']:.1f}) | "
            f"{p['build_cpu_s'] / c * 1e6:.1f} | {p['delta_s']:.1f} | {p['served_ms']:.1f} | "
            f"{p['shared'] / 1e6:,.1f} MB | {p['heaps'][0] / 1e6:,.1f} + {p['heaps'][1] / 1e6:,.1f} MB | "
            f"{p['per_customer']:,.0f} B |"
        )
    if len(points) > 1:
        xs = [p["customers"] for p in points]

        def slope(key: str) -> str:
            return f"{_slope(xs, [p[key] for p in points]):.2f}"

        lines += [
            "",
            f"Log-log slopes against customers: store build CPU {slope('build_cpu_s')} (1 = linear), total "
            f"bytes per customer {slope('per_customer')} (0 = flat), publication → served "
            f"{slope('served_ms')} (0 = independent of size). Main built the store row by row in Python: "
            f"{MAIN_BUILD_S_PER_M} s for 1,000,000 customers (wall, load average 4.4).",
        ]
    return lines


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
    customers = args.customers or [100_000, 1_000_000, 10_000_000]
    latency, _ = latency_rows(orders)
    scale = scale_rows(customers)
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    write_section(
        [
            "",
            "## Serving store: live orders and cohorts as history grows, memory per customer",
            "",
            f"_{today}, `python bench/serving_store.py`, load average {os.getloadavg()[0]:.1f} on 2 cores at the end — "
            "in process, one thread, `BatchIndex` + `Merger` "
            "over the memory-mapped serving store; one food-delivery tenant, a year of orders, 3 orders per "
            f"customer, {SPEED_EVENTS:,} speed events above W, the API's default 30 min window. Synthetic "
            'views are written straight into the store (no Spark). "main" is the figure measured before '
            "the store (the issue's table). ms/request: the mean in the best of 5 rounds of 0.5 s._",
            "",
            *latency,
            "",
            "Per size, in one process: the views written to Delta (delta-rs, straight from Arrow, no Spark), "
            "the serving store built from them (the batch run's last step before the manifest commit), the "
            "manifest published, then **publication → served**: a fresh `BatchLoader`'s poll → swap (reads "
            "the manifest pointer, opens the store, swaps; median of 5). Resident memory of two API workers: "
            "the store's used pages, mapped by both through the page cache and counted once, plus each "
            "worker's private (anonymous) heap growth after opening the store and serving 20,000 random "
            "profiles and time series and both tenant routes (main before the store: 6.4 KiB per customer "
            "for two workers). Wall times are inflated by the shared box; CPU times much less so.",
            "",
            *scale,
            "",
        ]
    )


if __name__ == "__main__":
    main()

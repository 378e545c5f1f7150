"""Speed-store benchmark: ingest events/s (one core), memory per million active keys, profile latency.

    python bench/speed.py [--events 1000000]

Reference in the same run: a bare Python loop that only counts events per customer in a dict (the
floor of any incremental aggregation in Python). Appends its table to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import time
import tracemalloc
import zlib

from report import write_section

from lambdalytics.infra.sources.generator import GeneratorConfig, generate
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.speed.embedded import EmbeddedSpeedStore


def rows(n: int, customers: int) -> list[tuple]:
    cfg = GeneratorConfig(seed=4, rate=300, duration_s=n / 900, customers_per_tenant=customers)
    out, offsets = [], {}
    for obj in generate(cfg):
        e = validate_event(obj)
        tp = (e.topic, zlib.crc32(e.key) % 6)
        offsets[tp] = offsets.get(tp, -1) + 1
        out.append((to_row(e), tp[0], tp[1], offsets[tp], e.event_time))
        if len(out) == n:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    data = rows(args.events, args.customers)
    n = len(data)

    t = time.perf_counter()
    counts: dict = {}
    for row, *_ in data:
        key = (row["tenant_id"], row["customer_id"])
        counts[key] = counts.get(key, 0) + 1
    ref_s = time.perf_counter() - t

    gc.collect()
    store = EmbeddedSpeedStore(block_size=1000)
    t = time.perf_counter()
    for record in data:
        store.ingest(*record)
    ingest_s = time.perf_counter() - t
    # memory in a second pass: tracemalloc slows allocation-heavy code several times over
    del store
    gc.collect()
    tracemalloc.start()
    store = EmbeddedSpeedStore(block_size=1000)
    for record in data:
        store.ingest(*record)
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    keys = len(counts)

    customers = list(counts)
    latencies = []
    for tenant, customer in customers[:2000]:
        t = time.perf_counter()
        store.customer(tenant, customer, {})
        latencies.append((time.perf_counter() - t) * 1e6)
    latencies.sort()
    p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99)]

    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "",
        "## Embedded speed store",
        "",
        f"Run {today}; {n:,} generated events, {keys:,} active customers, block size 1000, one Python thread. "
        "Memory by tracemalloc (Python allocations of the store, incl. the dedup window).",
        "",
        "| figure | value | reference | ratio |",
        "|---|---:|---|---:|",
        f"| ingest (dedup + all catalog aggregates) | {n / ingest_s:,.0f} events/s | bare dict count loop: "
        f"{n / ref_s:,.0f} events/s | {ref_s / ingest_s:.3f} |",
        f"| memory | {memory / keys * 1e6 / 2**30:,.2f} GiB per million active customers "
        f"({memory / 2**20:,.0f} MiB) | — | — |",
        f"| profile query (customer, all bases) | p50 {p50:,.0f} µs, p99 {p99:,.0f} µs | — | — |",
    ]
    write_section(lines)


if __name__ == "__main__":
    main()

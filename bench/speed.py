"""Speed-store benchmark: ingest events/s (one core), memory per million active keys, profile latency,
at one or more sizes to show how ingest cost grows.

    python bench/speed.py [--events 50000 --events 500000 --events 5000000]

Reference in the same run: a bare Python loop that only counts events per customer in a dict (the
floor of any incremental aggregation in Python). Sizes up to ``--memory-max`` are held in memory and
measured a second time under tracemalloc; larger ones are generated in chunks between timed ingest
passes (ingest, reference and profile latency only). Appends its table to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import math
import os
import statistics
import time
import tracemalloc
import zlib
from collections.abc import Iterable, Iterator

from report import write_section

from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.speed.embedded import EmbeddedSpeedStore

CHUNK = 200_000


def chunks(n: int, customers: int) -> Iterator[list[tuple]]:
    """The first ``n`` generated events as store records, ``CHUNK`` at a time (the same stream for any n)."""
    # generous: the event rate ramps up over the first simulated hour; the first n events never change
    cfg = GeneratorConfig(seed=4, rate=300, duration_s=3600 + n / 450, customers_per_tenant=customers)
    out, offsets, total = [], {}, 0
    for obj in generate(cfg):
        e = validate_event(obj)
        tp = (e.topic, zlib.crc32(e.key) % 6)
        offsets[tp] = offsets.get(tp, -1) + 1
        out.append((to_row(e), tp[0], tp[1], offsets[tp], e.event_time))
        total += 1
        if len(out) == CHUNK or total == n:
            yield out
            out = []
        if total == n:
            return
    raise RuntimeError(f"the generator ended after {total:,} of {n:,} events")


def timed_ingest(parts: Iterable[list[tuple]]) -> tuple[EmbeddedSpeedStore, dict, float, float, int]:
    """Reference loop and store ingest over the same records; only these loops are timed."""
    counts: dict = {}
    store = EmbeddedSpeedStore(block_size=1000)
    ref_s = ingest_s = 0.0
    n = 0
    for data in parts:
        n += len(data)
        t = time.perf_counter()
        for row, *_ in data:
            key = (row["tenant_id"], row["customer_id"])
            counts[key] = counts.get(key, 0) + 1
        ref_s += time.perf_counter() - t
        gc.collect()
        t = time.perf_counter()
        for record in data:
            store.ingest(*record)
        ingest_s += time.perf_counter() - t
    return store, counts, ref_s, ingest_s, n


def measure(n_events: int, customers: int, memory_max: int) -> dict:
    load = os.getloadavg()[0]
    memory = None
    if n_events <= memory_max:
        data = list(itertools.chain.from_iterable(chunks(n_events, customers)))
        store, counts, ref_s, ingest_s, n = timed_ingest([data])
        # memory in a second pass: tracemalloc slows allocation-heavy code several times over
        del store
        gc.collect()
        tracemalloc.start()
        store = EmbeddedSpeedStore(block_size=1000)
        for record in data:
            store.ingest(*record)
        memory = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del data
    else:
        store, counts, ref_s, ingest_s, n = timed_ingest(chunks(n_events, customers))

    latencies = []
    for tenant, customer in list(counts)[:2000]:
        t = time.perf_counter()
        store.customer(tenant, customer, {})
        latencies.append((time.perf_counter() - t) * 1e6)
    latencies.sort()
    return {
        "events": n,
        "keys": len(counts),
        "ingest_s": ingest_s,
        "ref_s": ref_s,
        "memory": memory,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99)],
        "load": load,
    }


def report(results: list[dict]) -> list[str]:
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    loads = " / ".join(f"{r['load']:.1f}" for r in results)
    lines = [
        "",
        "## Embedded speed store",
        "",
        f"Run {today}; generated events, block size 1000, one Python thread; {os.cpu_count()} cores, 1-min "
        f"load average {loads} at the start of each size (other work included). Memory by tracemalloc "
        "(Python allocations of the store, incl. the dedup window; only for sizes held in memory). "
        "*Active customers* = distinct customers in the store. Ingest = dedup + all catalog aggregates.",
        "",
        "| events | active customers | ingest events/s | µs/event | reference: bare dict count loop events/s "
        "| ratio | memory | profile query (customer, all bases) |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        n, keys = r["events"], r["keys"]
        memory = (
            f"{r['memory'] / keys * 1e6 / 2**30:,.2f} GiB per million active customers "
            f"({r['memory'] / 2**20:,.0f} MiB)"
            if r["memory"] is not None
            else "—"
        )
        lines.append(
            f"| {n:,} | {keys:,} | {n / r['ingest_s']:,.0f} | {r['ingest_s'] / n * 1e6:.1f} | "
            f"{n / r['ref_s']:,.0f} | {r['ref_s'] / r['ingest_s']:.3f} | {memory} | "
            f"p50 {r['p50']:,.0f} µs, p99 {r['p99']:,.0f} µs |"
        )
    steps = []
    for a, b in itertools.pairwise(results):
        times, events = b["ingest_s"] / a["ingest_s"], b["events"] / a["events"]
        steps.append(
            f"{a['events']:,} → {b['events']:,} events (×{events:g}): ingest time ×{times:.1f} "
            f"(log-log slope {math.log(times) / math.log(events):.2f}; 1 = linear)"
        )
    if steps:
        lines += ["", "How ingest cost grows: " + "; ".join(steps) + "."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, action="append", help="events per size (repeatable)")
    parser.add_argument("--customers", type=int, default=100_000, help="customer pool per tenant")
    parser.add_argument(
        "--memory-max", type=int, default=1_000_000, help="largest size held in memory and measured"
    )
    args = parser.parse_args()
    results = []
    for n in sorted(args.events or [500_000]):
        print(f"speed-store bench with {n:,} events", flush=True)
        results.append(measure(n, args.customers, args.memory_max))
        print(results[-1], flush=True)
    write_section(report(results))


if __name__ == "__main__":
    main()

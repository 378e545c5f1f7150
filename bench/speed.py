"""Speed-store benchmark: ingest events/s (one core), memory per million active keys, profile latency,
at one or more sizes to show how ingest cost grows.

    python bench/speed.py [--events 50000 --events 500000 --events 5000000] [--active 100000 ...]

Reference in the same run: a bare Python loop that only counts events per customer in a dict (the
floor of any incremental aggregation in Python). Sizes up to ``--memory-max`` are held in memory and
measured a second time under tracemalloc; larger ones are generated in chunks between timed ingest
passes (ingest, reference and profile latency only). The held sizes are measured twice under
tracemalloc: on the generated rows (the store's own allocations, as earlier runs measured) and on rows
decoded afresh per record (``orjson``, as the consumer decodes them: the strings the store keeps from its
records count too). ``--active N`` builds a store of N active customers in a fresh process from records
streamed in small chunks and reports its resident memory (RSS growth, no tracemalloc); ``--catch-up N``
times rebuilding a store from N records (a restart's catch-up above W, without the broker).
Appends its tables to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import math
import multiprocessing as mp
import os
import statistics
import time
import tracemalloc
import zlib
from collections.abc import Iterable, Iterator

import orjson
from report import write_section

from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.speed.embedded import EmbeddedSpeedStore

CHUNK = 200_000
POLL = 2000  # records per poll: the speed consumer's max_poll_records


def chunks(n: int, customers: int, size: int = CHUNK) -> Iterator[list[tuple]]:
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
        if len(out) == size or total == n:
            yield out
            out = []
        if total == n:
            return
    raise RuntimeError(f"the generator ended after {total:,} of {n:,} events")


def polls(data: list[tuple]) -> list[tuple[str, int, list[tuple]]]:
    """Records as the consumer hands them to the store: polls of ``POLL`` records, each split per
    partition into runs for ``ingest_many`` (Kafka returns a poll grouped by partition; not timed)."""
    out = []
    for start in range(0, len(data), POLL):
        runs: dict[tuple[str, int], list[tuple]] = {}
        for row, topic, partition, offset, broker_ms in data[start : start + POLL]:
            runs.setdefault((topic, partition), []).append((row, offset, broker_ms))
        out += [(*tp, items) for tp, items in runs.items()]
    return out


def ingest_polls(store: EmbeddedSpeedStore, runs: list[tuple[str, int, list[tuple]]]) -> None:
    for topic, partition, items in runs:
        store.ingest_many(topic, partition, items)


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
        runs = polls(data)
        gc.collect()
        t = time.perf_counter()
        ingest_polls(store, runs)
        ingest_s += time.perf_counter() - t
    return store, counts, ref_s, ingest_s, n


def measure(n_events: int, customers: int, memory_max: int) -> dict:
    load = os.getloadavg()[0]
    memory = memory_decoded = None
    if n_events <= memory_max:
        data = list(itertools.chain.from_iterable(chunks(n_events, customers)))
        store, counts, ref_s, ingest_s, n = timed_ingest([data])
        # memory in a second pass: tracemalloc slows allocation-heavy code several times over
        del store
        gc.collect()
        tracemalloc.start()
        store = EmbeddedSpeedStore(block_size=1000)
        ingest_polls(store, polls(data))
        memory = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del store
        gc.collect()
        tracemalloc.start()  # again, each row decoded afresh: what the store keeps of it counts
        store = EmbeddedSpeedStore(block_size=1000)
        decoded = [(orjson.loads(orjson.dumps(row)), *position) for row, *position in data]
        ingest_polls(store, polls(decoded))
        del decoded
        memory_decoded = tracemalloc.get_traced_memory()[0]
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
        "memory_decoded": memory_decoded,
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
        "(Python allocations of the store, incl. the dedup window; only for sizes held in memory); "
        "*decoded*: the same with each row decoded afresh, so the strings the store keeps (event ids, "
        "customer and session ids) count too. "
        "*Active customers* = distinct customers in the store. Ingest = dedup + all catalog aggregates, "
        "records handed over as the speed consumer does: `ingest_many` per partition run of a 2,000-record poll.",
        "",
        "| events | active customers | ingest events/s | µs/event | reference: bare dict count loop events/s "
        "| ratio | memory | memory, decoded rows | profile query (customer, all bases) |",
        "|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results:
        n, keys = r["events"], r["keys"]
        memory, decoded = (
            f"{r[k] / keys * 1e6 / 2**30:,.2f} GiB per million active customers ({r[k] / 2**20:,.0f} MiB)"
            if r[k] is not None
            else "—"
            for k in ("memory", "memory_decoded")
        )
        lines.append(
            f"| {n:,} | {keys:,} | {n / r['ingest_s']:,.0f} | {r['ingest_s'] / n * 1e6:.1f} | "
            f"{n / r['ref_s']:,.0f} | {r['ref_s'] / r['ingest_s']:.3f} | {memory} | {decoded} | "
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


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _active_store(target: int, limit: int | None, out) -> None:
    """In a fresh process: stream records into a store until ``target`` customers are active — or, as the
    reference (``limit``), generate and discard ``limit`` records, to subtract the generator's memory."""
    gc.collect()
    before, events = _rss(), 0
    store = EmbeddedSpeedStore(block_size=1000)
    t = time.perf_counter()
    for data in chunks(limit or 50 * target, target, size=10_000):
        if limit is None:
            ingest_polls(store, polls(data))
        events += len(data)
        del data
        if limit is None and store.active_customers() >= target:
            break
    seconds = time.perf_counter() - t  # generation included: not an ingest rate
    gc.collect()
    out.put(
        {
            "target": target,
            "customers": store.active_customers(),
            "events": events,
            "rss": _rss() - before,
            "seconds": seconds,
        }
    )


def measure_active(target: int) -> dict:
    """The store's process and the generator-only reference over the same records, each in a fresh process."""
    ctx = mp.get_context("spawn")
    runs = []
    for limit in (None, "same"):
        out = ctx.Queue()
        args = (target, runs[0]["events"] if limit else None, out)
        proc = ctx.Process(target=_active_store, args=args)
        proc.start()
        runs.append(out.get())
        proc.join()
    store, generator = runs
    return store | {"rss_generator": generator["rss"], "load": os.getloadavg()[0]}


def measure_catch_up(n_events: int, customers: int) -> dict:
    """A restart rebuilds the store from the records above W: ingest timed alone over streamed chunks."""
    load, seconds, events = os.getloadavg()[0], 0.0, 0
    store = EmbeddedSpeedStore(block_size=1000)
    for data in chunks(n_events, customers):
        runs = polls(data)
        gc.collect()
        t = time.perf_counter()
        ingest_polls(store, runs)
        seconds += time.perf_counter() - t
        events += len(data)
    return {"events": events, "seconds": seconds, "load": load, "customers": store.active_customers()}


def report_active(active: list[dict]) -> list[str]:
    lines = [
        "",
        "## Embedded speed store: resident memory",
        "",
        "Resident memory of a store holding N active customers with every catalog aggregate, the dedup ids "
        "and the per-hour series: a fresh process streams generated records (10,000 per chunk, customer "
        "pool N per tenant) into the store until N customers are active; the figure is the growth of the "
        "process's RSS (strings kept from the records included, allocator slack included) minus that of a "
        "reference process that generates and discards the same records (the generator's own state).",
        "",
        "| active customers | events held | RSS growth: store process − generator only "
        "| per million active customers | 1-min load |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in active:
        rss = r["rss"] - r["rss_generator"]
        lines.append(
            f"| {r['customers']:,} | {r['events']:,} | {r['rss'] / 2**20:,.0f} − "
            f"{r['rss_generator'] / 2**20:,.0f} = {rss / 2**20:,.0f} MiB | "
            f"{rss / r['customers'] * 1e6 / 2**30:,.2f} GiB | {r['load']:.1f} |"
        )
    return lines


def report_catch_up(catch_up: list[dict]) -> list[str]:
    lines = []
    if catch_up:
        lines += [
            "",
            "## Embedded speed store: catch-up after a restart",
            "",
            "The store rebuilt from the records above W (here: all of them, generated in chunks between the "
            "timed passes; fetching and decoding are the consumer's, not timed here).",
            "",
            "| events | active customers | seconds | events/s | 1-min load |",
            "|---:|---:|---:|---:|---:|",
        ]
        for r in catch_up:
            lines.append(
                f"| {r['events']:,} | {r['customers']:,} | {r['seconds']:,.1f} | "
                f"{r['events'] / r['seconds']:,.0f} | {r['load']:.1f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, action="append", help="events per size (repeatable)")
    parser.add_argument("--customers", type=int, default=100_000, help="customer pool per tenant")
    parser.add_argument(
        "--memory-max", type=int, default=1_000_000, help="largest size held in memory and measured"
    )
    parser.add_argument("--active", type=int, action="append", help="active customers for RSS (repeatable)")
    parser.add_argument("--catch-up", type=int, action="append", help="events to rebuild a store from")
    args = parser.parse_args()
    results = []
    for n in sorted(args.events or ([] if args.active or args.catch_up else [500_000])):
        print(f"speed-store bench with {n:,} events", flush=True)
        results.append(measure(n, args.customers, args.memory_max))
        print(results[-1], flush=True)
    if results:
        write_section(report(results))
    active = []
    for n in sorted(args.active or []):
        print(f"speed-store resident memory with {n:,} active customers", flush=True)
        active.append(measure_active(n))
        print(active[-1], flush=True)
    if active:
        write_section(report_active(active))
    catch_up = []
    for n in sorted(args.catch_up or []):
        print(f"speed-store catch-up over {n:,} events", flush=True)
        catch_up.append(measure_catch_up(n, args.customers))
        print(catch_up[-1], flush=True)
    if catch_up:
        write_section(report_catch_up(catch_up))


if __name__ == "__main__":
    main()

"""Quality ledger benchmark: what classifying and counting each record costs the archiver, per micro-batch,
next to the event-id index write the same batch already makes; and what one ``GET /v1/quality`` window
read costs as the ledger's history grows.

    python bench/quality.py [--events 200000] [--batch 5000]

The generator's stream (validated, real rows; 1 % copies, 2 % late), cut into archiver-sized batches with
logical offsets on 6 partitions, recorded through ``batch.quality.QualityBatch`` into a fresh ledger and,
as the reference, through ``EventIndex.record`` (its own fresh index). Then ``QualityLedger.window`` over
24 h and 30 d of a ledger holding a year of hours for 100 tenants. Appends its table to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from report import write_section

from lambdalytics.batch.quality import QualityBatch
from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.event_index import EventIndex
from lambdalytics.infra.quality_ledger import Observation, QualityLedger
from lambdalytics.schemas.catalog import HOUR_MS
from lambdalytics.schemas.events import to_row, validate_event

PARTITIONS = 6


def rows_of(n: int) -> list[dict]:
    rows, offsets = [], [0] * PARTITIONS
    stream = generate(GeneratorConfig(seed=3, rate=50, duration_s=n / 50, duplicates=0.01, late=0.02))
    for i, obj in enumerate(stream):
        if i == n:
            break
        event = validate_event(obj)
        row, p = to_row(event), hash(event.key) % PARTITIONS
        row.update(topic=event.topic, partition=p, offset=offsets[p], broker_time=obj["event_time"] + 500)
        offsets[p] += 1
        rows.append(row)
    return rows


def covers(batch: list[dict]) -> dict:
    out: dict = {}
    for r in batch:
        out[(r["topic"], r["partition"])] = max(out.get((r["topic"], r["partition"]), 0), r["offset"] + 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()
    rows = rows_of(args.events)
    batches = [rows[i : i + args.batch] for i in range(0, len(rows), args.batch)]
    print(f"{len(rows):,} rows in {len(batches)} batches", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        index = EventIndex.open(Path(tmp) / "index")
        t_index = time.perf_counter()
        for b in batches:
            index.record(
                ((r["tenant_id"], r["event_id"], r["topic"], r["partition"], r["offset"]) for r in b),
                covers=covers(b),
                after=None,
            )
        t_index = time.perf_counter() - t_index
        ledger = QualityLedger.open(Path(tmp) / "ledger")
        t_quality = time.perf_counter()
        for b in batches:
            batch = QualityBatch()
            for r in b:
                batch.valid(r)
            batch.commit(ledger, index, covers(b))
        t_quality = time.perf_counter() - t_quality
        counted = ledger.totals()
        ledger.close()
        index.close()

        history = QualityLedger.open(Path(tmp) / "history")
        now = 1_767_225_600_000
        hours, tenants = 365 * 24, 100
        for h in range(hours):
            at = now - h * HOUR_MS
            history.record(
                [
                    Observation("events.behavioral", 0, h * tenants + t, f"t{t}", at, ("records", "late"))
                    for t in range(tenants)
                ],
                covers={},
            )
        reads = {}
        for label, span in (("24 h", 24 * HOUR_MS), ("30 d", 30 * 24 * HOUR_MS)):
            t = time.perf_counter()
            for i in range(200):
                history.window(f"t{i % tenants}", now - span, now)
            reads[label] = (time.perf_counter() - t) / 200 * 1000
        history.close()

    records = sum(n for (_, c), n in counted.items() if c == "records")
    assert records == len(rows), (records, len(rows))
    lines = [
        "",
        "## Quality ledger: per-record classification and window reads",
        "",
        f"{len(rows):,} generated rows in archiver batches of {args.batch:,} (`bench/quality.py`); one core, on a 2-core box shared by other jobs.",
        "",
        "| figure | value | reference | reference value |",
        "|---|---:|---|---:|",
        f"| classify + count (`QualityBatch.commit`) | {len(rows) / t_quality:,.0f} rows/s "
        f"| event-id index write of the same batches | {len(rows) / t_index:,.0f} rows/s |",
        f"| `GET /v1/quality` window read, 24 h, ledger of a year × {tenants} tenants "
        f"| {reads['24 h']:.3f} ms | 30 d window | {reads['30 d']:.3f} ms |",
    ]
    write_section(lines)


if __name__ == "__main__":
    main()

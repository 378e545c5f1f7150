"""Batch benchmark: events/s of a full batch run and of the customer profile alone, with DuckDB
computing the same profile from the same master files in the same run as the reference.

    python bench/batch.py --events 100000 --events 1000000 --events 10000000

Events are generated, validated and landed straight into the master dataset (the archiver's own
throughput is measured by bench/run.py), then ``run_batch`` runs on Spark ``local[*]``; then
``--new-share`` (1 %) more events are landed and the next ``run_batch`` folds them in incrementally. With several
sizes, a second table shows how cost grows from one size to the next (×10 time for ×10 events is linear).
Appends its tables to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import tempfile
import time
import zlib
from importlib.metadata import version
from pathlib import Path

import duckdb
from report import write_section

from lambdalytics.batch import master
from lambdalytics.batch.job import run_batch
from lambdalytics.batch.phases import Phases
from lambdalytics.batch.spark import spark_session
from lambdalytics.batch.views import customer_profile, dedup_events
from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.events import to_row, validate_event

PARTITIONS = 6
DUCKDB_PROFILE = """
WITH e AS (
  SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY tenant_id, event_id ORDER BY broker_time, topic, "partition", "offset") rn
    FROM read_parquet($files)) WHERE rn = 1)
SELECT tenant_id, customer_id, count(*) events_total, min(event_time) first_seen, max(event_time) last_seen,
  count(DISTINCT session_id) FILTER (WHERE event_type IN ('session_start','page_view','app_event','search','add_to_cart')) sessions,
  count(*) FILTER (WHERE event_type = 'page_view') page_views,
  count(*) FILTER (WHERE event_type = 'order_placed') orders,
  count(*) FILTER (WHERE event_type = 'order_paid') paid_orders,
  sum(amount_micros) FILTER (WHERE event_type = 'order_paid') revenue,
  sum(amount_micros) FILTER (WHERE event_type = 'refund') refunds,
  max(event_time) FILTER (WHERE event_type = 'order_placed') last_order_at,
  count(*) FILTER (WHERE event_type = 'ad_impression') ad_impressions,
  count(*) FILTER (WHERE event_type = 'ad_click') ad_clicks,
  count(*) FILTER (WHERE event_type = 'ticket_opened') tickets_opened,
  count(*) FILTER (WHERE event_type = 'ticket_resolved') tickets_resolved,
  sum(score) FILTER (WHERE event_type = 'csat_submitted') csat_score_sum,
  count(*) FILTER (WHERE event_type = 'csat_submitted') csat_responses
FROM e GROUP BY ALL
"""


class Stream:
    """Generated events, validated and landed straight into the master in appends of up to 500,000."""

    def __init__(self, data_dir: Path, total: int):
        # the stream's event rate ramps up over its first simulated hour (deliveries follow orders): a
        # generous duration, cut at the events asked for (the first n events do not depend on it)
        cfg = GeneratorConfig(
            seed=1, rate=200, duration_s=3600 + total / 350, customers_per_tenant=max(1000, total // 30)
        )
        self.path = master.master_path(data_dir)
        self.events = generate(cfg)
        self.offsets: dict[tuple[str, int], int] = {}
        self.seq = 0

    def land(self, n_events: int) -> float:
        started = time.perf_counter()
        chunk, landed = [], 0
        for obj in self.events:
            event = validate_event(obj)
            tp = (event.topic, zlib.crc32(event.key) % PARTITIONS)
            offset = self.offsets.get(tp, 0)
            self.offsets[tp] = offset + 1
            chunk.append(
                {
                    **to_row(event),
                    "topic": tp[0],
                    "partition": tp[1],
                    "offset": offset,
                    "broker_time": event.event_time,
                    "raw": b"",
                }
            )
            landed += 1
            if len(chunk) == 500_000 or landed == n_events:
                self.seq += 1
                master.append_batch(self.path, master.rows_to_table(chunk), dict(self.offsets), self.seq)
                chunk = []
                print(f"  landed {landed:,}", flush=True)
            if landed == n_events:
                break
        if landed != n_events:
            raise RuntimeError(f"the generator ended after {landed:,} of {n_events:,} events")
        return time.perf_counter() - started


def bench(n_events: int, new_share: float) -> dict:
    new_events = max(1, round(n_events * new_share))
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        stream = Stream(data_dir, n_events + new_events)
        land_s = stream.land(n_events)
        settings = Settings(data_dir=data_dir, block_size=1)
        files = master.snapshot(master.master_path(data_dir))[2].file_uris()
        t = time.perf_counter()
        rows = duckdb.sql(DUCKDB_PROFILE, params={"files": files}).to_arrow_table()
        duck_s = time.perf_counter() - t
        with spark_session(settings) as spark:
            t = time.perf_counter()
            manifest = run_batch(settings, spark=spark, show_progress=False)
            run_s = time.perf_counter() - t
            # the profile alone, on the now warm JVM, is the like-for-like figure against DuckDB
            t = time.perf_counter()
            events = spark.read.parquet(*files).drop("raw")
            profile = customer_profile(dedup_events(events)).toArrow()
            profile_s = time.perf_counter() - t
            # then the next run: new_share more events archived, folded into this version
            stream.land(new_events)
            phases = Phases()
            t = time.perf_counter()
            folded = run_batch(settings, spark=spark, show_progress=False, phases=phases)
            incremental_s = time.perf_counter() - t
        assert profile.num_rows == rows.num_rows and manifest is not None
        assert folded is not None and folded.kind == "incremental", folded
        return {
            "events": n_events,
            "new_events": new_events,
            "customers": rows.num_rows,
            "land_s": land_s,
            "duck_s": duck_s,
            "profile_s": profile_s,
            "run_s": run_s,
            "incremental_s": incremental_s,
            "phases": phases.by_kind(),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, action="append", help="events per run (repeatable)")
    parser.add_argument(
        "--warmup-events", type=int, default=20_000, help="untimed first run (JVM JIT, caches); 0: none"
    )
    parser.add_argument(
        "--new-share", type=float, default=0.01, help="events archived before the incremental run, × events"
    )
    args = parser.parse_args()
    sizes = sorted(args.events or [1_000_000])
    if args.warmup_events:
        print(f"warm-up run with {args.warmup_events:,} events", flush=True)
        bench(args.warmup_events, args.new_share)
    results, loads = [], []
    for n in sizes:
        print(f"batch bench with {n:,} events", flush=True)
        loads.append(f"{os.getloadavg()[0]:.1f}")
        results.append(bench(n, args.new_share))
        print(results[-1], flush=True)
    warm = f"after an untimed {args.warmup_events:,}-event run, " if args.warmup_events else ""
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "",
        "## Batch run (Spark local[*]) vs DuckDB",
        "",
        f"Run {today}; pyspark {version('pyspark')}, duckdb {version('duckdb')}, deltalake {version('deltalake')}; "
        f"{os.cpu_count()} cores (1-min load average {' / '.join(loads)} at the start of each size, other "
        f"work included); sizes in one process, {warm}so each is measured on a warm JVM. The profile "
        "columns are the customer-grain bases (DuckDB: exact distinct sessions; Spark: HLL sketch). *Full run* = read master + dedup + every view + cohorts/RFM + Delta writes + manifest.",
        "",
        "| events | customers | Spark profile s | DuckDB profile s | Spark speed / DuckDB speed | full batch run s | full run events/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['events']:,} | {r['customers']:,} | {r['profile_s']:.1f} | {r['duck_s']:.1f} | "
            f"{r['duck_s'] / r['profile_s']:.2f} | {r['run_s']:.1f} | {r['events'] / r['run_s']:,.0f} |"
        )
    lines += growth(results)
    lines += incremental_table(results, args.new_share)
    write_section(lines)


def incremental_table(results: list[dict], new_share: float) -> list[str]:
    """The next run after the full one: only the new events folded into the version just published."""
    lines = [
        "",
        f"Incremental run: after the full run above, {new_share:.0%} more events are archived and the next "
        "`batch run` folds them into that version (index the new rows + read the previous views + dedup of the "
        "new events through the event-id index + fold + derived views of the touched customers and tenants + "
        "Delta writes + serving store + manifest). The bench writes the master directly (no archiver), so "
        "the run indexes the new rows itself, as the archiver would have. *Ratio* = incremental run time / "
        "full run time at the same size, same process.",
        "",
        "| events archived | new events | full run s | incremental run s | ratio | DuckDB profile s (all events) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['events']:,} | {r['new_events']:,} | {r['run_s']:.1f} | {r['incremental_s']:.1f} | "
            f"{r['incremental_s'] / r['run_s']:.2f} | {r['duck_s']:.1f} |"
        )
    lines += [
        "",
        "Where the incremental run's time goes (`batch/phases.py`; seconds per phase, the writes of all view "
        "tables summed; phases under 0.1 s left out):",
        "",
        "| events archived | phase | s |",
        "|---:|---|---:|",
    ]
    for r in results:
        phases = _phase_kinds(r["phases"])
        lines += [f"| {r['events']:,} | {name} | {s:.1f} |" for name, s in phases.items() if s >= 0.1]
    return lines


def _phase_kinds(phases: dict[str, float]) -> dict[str, float]:
    """Phases by kind: every ``write <view>`` as one ``write view tables`` row."""
    out: dict[str, float] = {}
    for name, seconds in phases.items():
        kind = "write view tables" if name.startswith("write ") else name
        out[kind] = out.get(kind, 0.0) + seconds
    return out


def growth(results: list[dict]) -> list[str]:
    """Cost per event at each size, and how each time grows to the next size (log-log slope 1 = linear)."""
    if len(results) < 2:
        return []
    lines = [
        "",
        "How cost grows with size (µs per event; *×* = time at this size / time at the previous size; "
        "*slope* = log(time ×) / log(events ×): 1 is linear, below 1 fixed costs still dominate):",
        "",
        "| events | full run µs/event | Spark profile µs/event | DuckDB profile µs/event | Spark / DuckDB time | "
        "full run × (slope) | Spark profile × (slope) | DuckDB profile × (slope) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    previous = None
    for r in results:
        per_event = [r[k] / r["events"] * 1e6 for k in ("run_s", "profile_s", "duck_s")]
        cells = [f"{r['events']:,}", *(f"{v:,.1f}" for v in per_event), f"{r['profile_s'] / r['duck_s']:.1f}"]
        for k in ("run_s", "profile_s", "duck_s"):
            if previous is None:
                cells.append("—")
            else:
                times, events = r[k] / previous[k], r["events"] / previous["events"]
                cells.append(f"{times:.1f} ({math.log(times) / math.log(events):.2f})")
        lines.append("| " + " | ".join(cells) + " |")
        previous = r
    return lines


if __name__ == "__main__":
    main()

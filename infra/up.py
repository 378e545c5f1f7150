"""``lambdalytics up``: the whole pipeline on one machine (what ``make run`` starts).

Today: the broker (embedded unless configured), the topics, a live demo stream from the generator,
and a consumer that validates every record the way the pipeline's consumers do (dead-lettering the
rest) and shows live counts. Ctrl-C (or ``--duration``) stops everything cleanly.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.live import Live
from rich.table import Table

from lambdalytics.schemas.topics import ALL_TOPICS, DEADLETTER_TOPIC

from .kafka_io import EventDecoder, EventProducer, ensure_topics
from .runtime import running_broker
from .settings import Settings
from .sources.generator import GeneratorConfig, generate
from .sources.pacing import send_paced

console = Console()


def _stream_demo(bootstrap: str, cfg: GeneratorConfig, stop: threading.Event) -> None:
    with EventProducer(bootstrap) as producer:

        def until_stopped():
            for event in generate(cfg):
                if stop.is_set():
                    return
                yield event

        send_paced(until_stopped(), producer, speedup=1.0, show_progress=False)


def _table(counts: Counter[str], dead: Counter[str], bootstrap: str, started: float) -> Table:
    table = Table(title=f"lambdalytics up — Kafka {bootstrap} — {time.monotonic() - started:,.0f}s")
    table.add_column("topic")
    table.add_column("valid events", justify="right")
    for topic in ALL_TOPICS:
        if topic != DEADLETTER_TOPIC:
            table.add_row(topic, f"{counts[topic]:,}")
    table.add_row(DEADLETTER_TOPIC, f"{counts[DEADLETTER_TOPIC]:,}  {dict(dead) or ''}")
    return table


def run_up(
    settings: Settings,
    *,
    demo: bool = True,
    rate: float = 20.0,
    duration_s: float | None = None,
    seed: int = 7,
) -> Counter[str]:
    """Run until Ctrl-C or ``duration_s``; returns the valid-event counts per topic seen."""
    with running_broker(settings) as bootstrap:
        partitions = ensure_topics(bootstrap, settings.kafka_partitions)
        console.print(f"[bold green]Kafka ready[/] at {bootstrap}: {partitions}")
        stop = threading.Event()
        threads = []
        if demo:
            cfg = GeneratorConfig(
                seed=seed, rate=rate, duration_s=365 * 86_400, start_ms=int(time.time() * 1000)
            )
            threads.append(threading.Thread(target=_stream_demo, args=(bootstrap, cfg, stop), daemon=True))
        for t in threads:
            t.start()
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="lambdalytics-up-monitor"
        )
        consumer.assign([TopicPartition(t, p) for t, n in partitions.items() for p in range(n)])
        if settings.kafka_bootstrap:
            consumer.seek_to_end()  # an external cluster may hold a long history
        else:
            consumer.seek_to_beginning()
        counts: Counter[str] = Counter()
        with EventProducer(bootstrap) as dead_letters:
            decoder = EventDecoder(dead_letters, max_event_bytes=settings.max_event_bytes)
            started = time.monotonic()
            try:
                with Live(
                    _table(counts, decoder.dead_lettered, bootstrap, started),
                    console=console,
                    refresh_per_second=2,
                ) as live:
                    while duration_s is None or time.monotonic() - started < duration_s:
                        for records in consumer.poll(timeout_ms=500).values():
                            for record in records:
                                if record.topic == DEADLETTER_TOPIC or decoder.decode(record) is not None:
                                    counts[record.topic] += 1
                        live.update(_table(counts, decoder.dead_lettered, bootstrap, started))
            except KeyboardInterrupt:
                console.print("stopping…")
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=10)
                consumer.close()
        return counts

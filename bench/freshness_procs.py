"""The two helper processes of bench/freshness.py: a steady background producer and a reference consumer.

Separate processes so their work does not share the probing process's GIL; both report through a
multiprocessing queue. Times are ``time.monotonic_ns()`` (CLOCK_MONOTONIC: one clock for every process).
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition

from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.kafka_io import EventProducer
from lambdalytics.schemas.topics import EVENT_TOPICS


def background(bootstrap: str, rate: float, stop, out) -> None:
    """Generator events at a fixed ``rate`` (event n goes out at start + n/rate) until ``stop`` is set.

    Fixed wall-clock pacing rather than event-time pacing: the generator's event rate ramps up over its
    first simulated hour (deliveries follow orders), and the load must be steady from the first probe.
    """
    cfg = GeneratorConfig(seed=11, rate=50, duration_s=7 * 86_400, start_ms=int(time.time() * 1000))
    with EventProducer(bootstrap) as producer:
        started = time.monotonic()
        for n, obj in enumerate(generate(cfg)):
            if stop.is_set():
                break
            if (wait := started + n / rate - time.monotonic()) > 0:
                time.sleep(wait)
            producer.send_obj(obj)
        producer.flush()
        seconds = time.monotonic() - started
        summary = producer.summary
    out.put({"sent": summary.total_sent, "rejected": summary.total_rejected, "seconds": seconds})


def reference(bootstrap: str, prefix: bytes, consumer_config: dict, poll_timeout_ms: int, stop, out) -> None:
    """A plain kafka-python consumer shaped like the speed consumer (``assign()`` on every event partition,
    from the beginning, a ``poll`` loop) that only notes when it first holds each record keyed ``prefix…``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **consumer_config)
    consumer.assign(
        [TopicPartition(t, p) for t in EVENT_TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())]
    )
    consumer.seek_to_beginning()
    seen: dict[bytes, int] = {}
    out.put("ready")
    while not stop.is_set():
        batches = consumer.poll(timeout_ms=poll_timeout_ms)
        now = time.monotonic_ns()
        for records in batches.values():
            for record in records:
                if record.key and record.key.startswith(prefix):
                    seen.setdefault(record.key, now)
    consumer.close()
    out.put(seen)

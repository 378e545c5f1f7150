"""Produce → consume round trip and dead-lettering through a real Kafka-protocol broker."""

from __future__ import annotations

import time

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from lambdalytics.infra.kafka_io import EventDecoder, EventProducer, ensure_topics, read_dead_letter
from lambdalytics.schemas.topics import ALL_TOPICS, DEADLETTER_TOPIC, EVENT_TOPICS

pytestmark = pytest.mark.integration


def _drain(
    bootstrap: str, topics: dict[str, int], expect: int, mine=lambda record: True, timeout_s: float = 60.0
) -> list:
    """Read the topics from the start until ``expect`` records satisfying ``mine`` were seen (the session
    broker is shared, so other tests' records are there too)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(t, p) for t, n in topics.items() for p in range(n)])
    consumer.seek_to_beginning()
    records: list = []
    deadline = time.monotonic() + timeout_s
    while len(records) < expect and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(r for r in batch if mine(r))
    consumer.close()
    return records


@pytest.fixture
def topics(kafka_bootstrap, unique):
    """Topics with this test's own names (the session broker is shared)."""
    names = [f"{t}.{unique}" for t in ALL_TOPICS]
    return ensure_topics(kafka_bootstrap, 3, names)


def test_ensure_topics_creates_missing_and_keeps_existing(kafka_bootstrap, unique):
    name = f"events.behavioral.{unique}"
    assert ensure_topics(kafka_bootstrap, 2, [name]) == {name: 2}
    # asking again with another partition count uses the topic as it is
    assert ensure_topics(kafka_bootstrap, 6, [name]) == {name: 2}


def test_valid_events_round_trip_invalid_ones_are_dead_lettered(kafka_bootstrap, unique):
    counts = ensure_topics(kafka_bootstrap, 3)  # the real topic names: the decoder maps topic → family
    tenant = f"rt{unique}"
    good = [
        {
            "event_id": f"rt-{i}",
            "tenant_id": tenant,
            "customer_id": f"c{i % 3}",
            "event_type": "page_view",
            "event_time": 1_767_225_600_000 + i,
        }
        for i in range(20)
    ] + [
        {
            "event_id": "rt-paid",
            "tenant_id": tenant,
            "customer_id": "c1",
            "event_type": "order_paid",
            "order_id": "o1",
            "amount": 9.99,
            "currency": "EUR",
            "event_time": "2026-01-01T00:00:00Z",
        }
    ]
    with EventProducer(kafka_bootstrap) as producer:
        for obj in good:
            producer.send_obj(obj)
        # what a foreign producer might write straight to the topics
        producer.send_raw("events.behavioral", b"\xff\xfe not utf-8", key=f"{tenant}:c0".encode())
        producer.send_raw("events.support", b'{"event_id": "x"', key=f"{tenant}:c0".encode())
        producer.send_raw(
            "events.transaction",
            orjson.dumps({**good[0], "event_id": "wrong-family"}),
            key=f"{tenant}:c0".encode(),
        )
        # and what our own producers refuse before it reaches an event topic
        producer.send_obj({**good[0], "event_id": "no-time", "event_time": None})
    assert producer.summary.sent == {"events.behavioral": 20, "events.transaction": 1}
    assert producer.summary.rejected == {("events.behavioral", "contract_violation"): 1}

    prefix = f"{tenant}:".encode()
    ours = _drain(
        kafka_bootstrap,
        {t: counts[t] for t in EVENT_TOPICS},
        expect=24,
        mine=lambda r: bool(r.key) and r.key.startswith(prefix),
    )
    with EventProducer(kafka_bootstrap) as dead_letters:
        decoder = EventDecoder(dead_letters)
        decoded = [e for r in ours if (e := decoder.decode(r)) is not None]
    assert sorted(e.event_id for e in decoded) == sorted(o["event_id"] for o in good)
    paid = next(e for e in decoded if e.event_type == "order_paid")
    assert (str(paid.amount), paid.event_time) == ("9.99", 1_767_225_600_000)
    assert decoder.dead_lettered == {"invalid_utf8": 1, "invalid_json": 1, "wrong_topic": 1}

    letters = [
        read_dead_letter(r)
        for r in _drain(
            kafka_bootstrap,
            {DEADLETTER_TOPIC: counts[DEADLETTER_TOPIC]},
            expect=4,
            mine=lambda r: r.key == prefix + b"c0" or tenant.encode() in (r.value or b""),
        )
    ]
    by_reason = {d.reason: d for d in letters}
    assert set(by_reason) >= {"invalid_utf8", "invalid_json", "wrong_topic", "contract_violation"}
    utf8 = by_reason["invalid_utf8"]
    assert utf8.value == b"\xff\xfe not utf-8"  # original bytes, untouched
    assert utf8.source_topic == "events.behavioral" and utf8.source_offset >= 0 and utf8.source_partition >= 0
    source = next(r for r in ours if r.value == b"\xff\xfe not utf-8")
    assert (utf8.source_partition, utf8.source_offset) == (source.partition, source.offset)
    refused = by_reason["contract_violation"]
    assert refused.source_offset == -1 and refused.errors[0]["loc"] == "event_time"


def test_producer_partitions_by_customer_key(kafka_bootstrap, topics, unique):
    """Same tenant:customer key → same partition, so one customer's events stay in order."""
    topic = f"events.behavioral.{unique}"
    with EventProducer(kafka_bootstrap) as producer:
        metas = [producer.send_raw(topic, b"{}", key=f"t:c{i % 4}".encode()) for i in range(40)]
    partition_of: dict[bytes, set[int]] = {}
    for i, meta in enumerate(metas):
        partition_of.setdefault(f"t:c{i % 4}".encode(), set()).add(meta.get(10).partition)
    assert all(len(p) == 1 for p in partition_of.values())

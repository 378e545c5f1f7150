"""The speed consumer on the real broker: it sees what was acknowledged, and a restart rebuilds it."""

from __future__ import annotations

import time

import pytest

from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.broker import EmbeddedBroker
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.schemas.topics import EVENT_TOPICS
from lambdalytics.speed.consumer import SpeedConsumer
from lambdalytics.speed.embedded import EmbeddedSpeedStore

pytestmark = pytest.mark.integration


def _wait_for(
    store: EmbeddedSpeedStore, tenant: str, customers: list[str], expected: int, timeout_s=120.0
) -> int:
    deadline = time.monotonic() + timeout_s
    total = -1
    while time.monotonic() < deadline:
        total = sum(store.customer(tenant, c, {})["events_total"] for c in customers)
        if total >= expected:
            break
        time.sleep(0.1)
    return total


def test_consumer_applies_acknowledged_events_and_restart_rebuilds_identically(kafka_bootstrap, unique):
    ensure_topics(kafka_bootstrap, 6)
    tenant = f"speed-{unique}"
    events = [
        {**e, "tenant_id": tenant}
        for e in generate(
            GeneratorConfig(seed=3, rate=5, duration_s=60, duplicates=0.1, tenants=("demo-food",))
        )
    ]
    unique_ids = {e["event_id"] for e in events}
    customers = sorted({e["customer_id"] for e in events})
    with EventProducer(kafka_bootstrap) as producer:
        for e in events:
            producer.send_obj(e)
        producer.send_raw("events.behavioral", b"not json", key=f"{tenant}:x".encode())
    first = EmbeddedSpeedStore(block_size=100)
    consumer = SpeedConsumer(first, kafka_bootstrap).start()
    try:
        assert _wait_for(first, tenant, customers, len(unique_ids)) == len(unique_ids)  # duplicates once
        assert first.status().caught_up
    finally:
        consumer.stop()
    assert consumer.decoder.dead_lettered["invalid_json"] >= 1  # skipped, counted, not dead-lettered twice

    second = EmbeddedSpeedStore(block_size=100)
    again = SpeedConsumer(second, kafka_bootstrap).start()
    try:
        assert _wait_for(second, tenant, customers, len(unique_ids)) == len(unique_ids)
    finally:
        again.stop()
    for c in customers:
        assert second.customer(tenant, c, {}) == first.customer(tenant, c, {})
        assert second.customer_hours(tenant, c, {}, 0, 2**62) == first.customer_hours(tenant, c, {}, 0, 2**62)


def test_a_malformed_first_record_does_not_make_the_store_refuse_reads():
    """A private broker, so each partition's offset 0 is ours: a record the consumer skips comes first.

    Before the fix the store took the first *applied* offset (1) as where consumption began, and
    refused every read at W=0 — on the shared broker this failed whenever a malformed record from
    another test happened to be first on a partition.
    """
    tenant = "skip-first"
    events = [
        {**e, "tenant_id": tenant}
        for e in generate(GeneratorConfig(seed=5, rate=2, duration_s=30, tenants=("demo-food",)))
    ]
    customers = sorted({e["customer_id"] for e in events})
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 1)
        with EventProducer(broker.bootstrap) as producer:
            for topic in EVENT_TOPICS:
                producer.send_raw(topic, b"not json", key=f"{tenant}:x".encode()).get(timeout=10)
            for e in events:
                producer.send_obj(e)
        store = EmbeddedSpeedStore(block_size=100)
        consumer = SpeedConsumer(store, broker.bootstrap).start()
        try:
            assert _wait_for(store, tenant, customers, len(events)) == len(events)
        finally:
            consumer.stop()
    assert consumer.decoder.dead_lettered["invalid_json"] == 3
    assert all(offset >= 1 for offset in store.status().positions.values())


class _FailsOnce(EmbeddedSpeedStore):
    """An embedded store whose ``ingest`` raises an unexpected exception on its ``nth`` call only."""

    def __init__(self, nth: int, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0
        self.nth = nth

    def ingest(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.nth:
            raise ZeroDivisionError("injected store fault")
        return super().ingest(*args, **kwargs)


def test_an_unexpected_exception_restarts_the_consumer_which_ends_caught_up(kafka_bootstrap, unique):
    ensure_topics(kafka_bootstrap, 6)
    tenant = f"crash-{unique}"
    events = [
        {**e, "tenant_id": tenant}
        for e in generate(GeneratorConfig(seed=8, rate=3, duration_s=40, tenants=("demo-food",)))
    ]
    customers = sorted({e["customer_id"] for e in events})
    with EventProducer(kafka_bootstrap) as producer:
        for e in events:
            producer.send_obj(e)
    store = _FailsOnce(nth=5, block_size=100)
    consumer = SpeedConsumer(store, kafka_bootstrap).start()
    try:
        # the record that raised is read again after the restart: every event counted exactly once
        assert _wait_for(store, tenant, customers, len(events)) == len(events)
        status = consumer.worker.status()
        assert status.restarts == 1 and status.last_error == "ZeroDivisionError: injected store fault"
        assert status.up and store.status().caught_up and consumer.staleness() is None
    finally:
        consumer.stop()
    assert consumer.worker.status().state == "stopped"
    assert sum(store.customer(tenant, c, {})["events_total"] for c in customers) == len(events)

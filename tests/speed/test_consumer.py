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


def test_no_record_stops_the_consumer_or_is_retried(kafka_bootstrap, unique):
    """1e22 and year 1 with an offset (each killed the thread on main), and a 3 MiB record: skipped
    with their reasons, the consumer moves past them and applies every valid neighbour."""
    import orjson
    from kafka import KafkaProducer

    ensure_topics(kafka_bootstrap, 6)
    tenant = f"speed-bad-{unique}"
    events = [
        {**e, "tenant_id": tenant}
        for e in generate(GeneratorConfig(seed=7, rate=3, duration_s=20, tenants=("demo-food",)))
    ]
    paid = next(e for e in events if e["event_type"] == "order_paid")
    customers = sorted({e["customer_id"] for e in events})
    raw = lambda obj, field, text: orjson.dumps({**obj, field: "@@"}).replace(b'"@@"', text)  # noqa: E731
    bad = [
        raw(paid, "amount", b"1e22"),
        raw(paid, "event_time", b'"0001-01-01T00:00:00+01:00"'),
        raw(paid, "event_time", b'"9999-12-31T23:59:59-01:00"'),
        orjson.dumps({**paid, "properties": {"blob": "x" * (3 * 1024 * 1024)}}),
    ]
    key = f"{tenant}:{paid['customer_id']}".encode()
    half = len(events) // 2
    big = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=8 * 1024 * 1024)
    with EventProducer(kafka_bootstrap) as producer:
        for e in events[:half]:
            producer.send_obj(e)
        producer.flush()
        positions = [big.send("events.transaction", key=key, value=v).get(30) for v in bad]
        big.close()
        for e in events[half:]:
            producer.send_obj(e)
    store = EmbeddedSpeedStore(block_size=100)
    consumer = SpeedConsumer(store, kafka_bootstrap).start()
    try:
        assert _wait_for(store, tenant, customers, len(events)) == len(events)
        assert consumer.worker.status().up
    finally:
        consumer.stop()
    consumed = store.status().positions
    assert all(consumed[(m.topic, m.partition)] > m.offset for m in positions)
    assert consumer.decoder.dead_lettered["contract_violation"] >= 3
    assert consumer.decoder.dead_lettered["payload_too_large"] >= 1
    assert consumer.decoder.dead_lettered["internal_error"] == 0


class _FailsOnce(EmbeddedSpeedStore):
    """An embedded store whose ``mark_caught_up`` (called by the poll loop after a poll's records are
    applied) raises an unexpected exception on its ``nth`` call only: a fault of the loop itself, not of
    one record (a record the store fails to apply is skipped with a reason, tested above)."""

    def __init__(self, nth: int, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0
        self.nth = nth

    def mark_caught_up(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.nth:
            raise ZeroDivisionError("injected store fault")
        return super().mark_caught_up(*args, **kwargs)


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
    store = _FailsOnce(nth=2, block_size=100)
    consumer = SpeedConsumer(store, kafka_bootstrap).start()
    try:
        # the restarted loop continues from the store's positions: every event counted exactly once
        assert _wait_for(store, tenant, customers, len(events)) == len(events)
        status = consumer.worker.status()
        assert status.restarts == 1 and status.last_error == "ZeroDivisionError: injected store fault"
        assert status.up and store.status().caught_up and consumer.staleness() is None
    finally:
        consumer.stop()
    assert consumer.worker.status().state == "stopped"
    assert sum(store.customer(tenant, c, {})["events_total"] for c in customers) == len(events)

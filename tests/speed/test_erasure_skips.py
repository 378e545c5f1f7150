"""Events of an erased customer that arrive later — a re-send, or a new one — are not counted again: the
speed consumer and the archiver skip them (counted in ``lambdalytics_erased_events_skipped_total``),
on the real broker."""

from __future__ import annotations

import orjson
import pytest
from deltalake import DeltaTable
from kafka import KafkaProducer

from lambdalytics.batch.archiver import run_archiver
from lambdalytics.batch.master import master_path
from lambdalytics.infra.broker import EmbeddedBroker
from lambdalytics.infra.erasures import ERASED_EVENTS_SKIPPED, ErasureList, ErasureLog
from lambdalytics.infra.kafka_io import ensure_topics
from lambdalytics.infra.settings import Settings
from lambdalytics.speed.consumer import SpeedConsumer
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from ..speed.test_consumer import _poll_until

pytestmark = pytest.mark.integration
BEHAVIORAL = "events.behavioral"
T0 = 1_767_225_600_000
TENANT = "erasing"


def _send(producer: KafkaProducer, customer: str, i: int) -> None:
    event = {
        "event_id": f"{customer}-{i}",
        "tenant_id": TENANT,
        "customer_id": customer,
        "event_type": "page_view",
        "event_time": T0 + i,
    }
    producer.send(BEHAVIORAL, orjson.dumps(event), key=f"{TENANT}:{customer}".encode(), partition=0).get(30)


def _skipped(component: str) -> float:
    return ERASED_EVENTS_SKIPPED.labels(component)._value.get()


def test_a_resent_event_of_an_erased_customer_is_not_counted_again(tmp_path):
    settings = Settings(data_dir=tmp_path)
    tp = (BEHAVIORAL, 0)
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        for i in range(3):
            _send(producer, "gone", i)
            _send(producer, "stays", i)
        store = EmbeddedSpeedStore(block_size=5)
        erasures = ErasureList(settings, component="speed", refresh_s=0)
        consumer = SpeedConsumer(store, broker.bootstrap, erasures=erasures)
        kafka = consumer.connect()
        try:
            _poll_until(consumer, kafka, lambda: store.status().positions.get(tp) == 6)
            assert store.customer(TENANT, "gone", {})["events_total"] == 3

            log = ErasureLog.open(settings)  # the erasure: recorded, then the store purged
            log.request(TENANT, "gone", ["gone"])
            store.erase(TENANT, ["gone"])
            before = _skipped("speed")
            _send(producer, "gone", 0)  # a re-send of an erased event (same event id)
            _send(producer, "gone", 9)  # a new event of the erased customer
            _send(producer, "stays", 9)
            _poll_until(consumer, kafka, lambda: store.status().positions.get(tp) == 9)
        finally:
            kafka.close()
            producer.close()
        assert store.customer(TENANT, "gone", {})["events_total"] == 0
        assert store.customer(TENANT, "stays", {})["events_total"] == 4
        assert erasures.skipped == 2 and _skipped("speed") - before == 2
        assert consumer.decoder.dead_lettered == {}  # skipped, never dead-lettered (no PII copied)

        # the archiver, started after the erasure, lands nothing of the erased customer (offsets advance)
        stats = run_archiver(broker.bootstrap, tmp_path, max_batch_seconds=0.5, idle_exit_seconds=2.0)
    customers = DeltaTable(str(master_path(tmp_path))).to_pyarrow_table(columns=["customer_id"])
    assert sorted(customers.column("customer_id").to_pylist()) == ["stays"] * 4
    assert stats.erased_skipped == 5 and stats.rows == 4
    log.close()

"""The speed consumer on the real broker: it sees what was acknowledged, and a restart rebuilds it; stream
faults (partitions it has not reached or found yet, lost positions) fail closed and are reported, and
"caught up" means its positions reached the broker's high-water marks."""

from __future__ import annotations

import contextlib
import time

import orjson
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.broker import EmbeddedBroker
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.topics import EVENT_TOPICS
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.consumer import SpeedConsumer, topic_partitions
from lambdalytics.speed.embedded import EmbeddedSpeedStore
from lambdalytics.speed.store import CoverageError

from ..serving.strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.integration


def _wait_for(
    store: EmbeddedSpeedStore, tenant: str, customers: list[str], expected: int, timeout_s=120.0
) -> int:
    deadline = time.monotonic() + timeout_s
    total = -1
    while time.monotonic() < deadline:
        with contextlib.suppress(CoverageError):  # until the consumer has read the topics' partitions
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
    one record (a record the store fails to apply opens a gap, tested below)."""

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
        deadline = time.monotonic() + 60  # the crash may come after the last record: await the restart
        while (
            not (consumer.worker.status().up and consumer.worker.status().restarts)
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        status = consumer.worker.status()
        assert status.restarts == 1 and status.last_error == "ZeroDivisionError: injected store fault"
        assert status.up and store.status().caught_up and consumer.staleness() is None
    finally:
        consumer.stop()
    assert consumer.worker.status().state == "stopped"
    assert sum(store.customer(tenant, c, {})["events_total"] for c in customers) == len(events)


# ------------------------------------------------------------------------------ stream faults

BEHAVIORAL = "events.behavioral"
T0 = 1_767_225_600_000


def _produce(bootstrap: str, partition: int, n: int, tenant: str = "faults", start: int = 0) -> None:
    """``n`` page views of customer ``one`` on one partition of events.behavioral, acknowledged."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(start, start + n):
        event = {
            "event_id": f"{tenant}-{partition}-{i}",
            "tenant_id": tenant,
            "customer_id": "one",
            "event_type": "page_view",
            "event_time": T0 + i,
        }
        producer.send(BEHAVIORAL, orjson.dumps(event), key=f"{tenant}:one".encode(), partition=partition).get(
            30
        )
    producer.close()


def _poll_until(consumer: SpeedConsumer, kafka, done, polls: int = 300) -> None:
    """Drive the consumer by hand (no thread) until ``done()``; a bounded number of polls, no clock."""
    for _ in range(polls):
        if done():
            return
        consumer.poll_once(kafka, timeout_ms=100)
    raise AssertionError(f"not reached after {polls} polls: {consumer.store.status()}")


class _CannotApply(EmbeddedSpeedStore):
    """A store that raises while applying one event id (after decoding: the record is valid)."""

    def __init__(self, event_id: str, **kwargs):
        super().__init__(**kwargs)
        self.event_id = event_id

    def _aggregate(self, row, *args):  # what ingest and ingest_many apply each deduplicated event with
        if row["event_id"] == self.event_id:
            raise ValueError("injected apply fault")
        return super()._aggregate(row, *args)


def test_a_record_the_store_cannot_apply_opens_a_gap_at_its_offset_until_a_batch_passes_it():
    """On main it was skipped: its event (which the archiver lands) silently missing from every answer."""
    tp = (BEHAVIORAL, 0)
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 1)
        _produce(broker.bootstrap, 0, 12)
        store = _CannotApply("faults-0-7", block_size=5)
        consumer = SpeedConsumer(store, broker.bootstrap, max_poll_records=5)
        kafka = consumer.connect()
        try:
            _poll_until(consumer, kafka, lambda: store.status().positions[tp] == 12)
        finally:
            kafka.close()
        status = store.status()
        assert [(g.topic, g.partition, g.start, g.end) for g in status.gaps] == [(*tp, 7, 8)]
        assert consumer.decoder.dead_lettered["internal_error"] == 1 and status.events == 11
        with pytest.raises(CoverageError, match=r"\[7, 8\) lost"):
            store.customer("faults", "one", {})
        with pytest.raises(CoverageError, match=r"\[7, 8\) lost"):
            store.customer("faults", "one", {tp: 5})  # a W below its end: the block above is incomplete
        store.on_batch_published({tp: 10}, block_size=5)  # the batch counts offsets 0..9, the failed one too
        assert store.status().gaps == ()
        assert store.customer("faults", "one", {tp: 10})["events_total"] == 2  # offsets 10, 11


def _serving(tmp_path, store: EmbeddedSpeedStore):
    state = ServingState(
        Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN, token_secret=TOKEN_SECRET), store
    )
    state.loader.refresh()  # no batch version yet: W = {}
    key = state.credentials.registry.create("faults", "Faults")
    return state, TestClient(create_app(state)), {"Authorization": f"Bearer {key}"}


def test_a_partition_added_later_is_covered_only_once_assigned_and_picked_up_without_restart():
    """The broker refuses CreatePartitions, so the metadata source hides partition 1 at first, as a
    consumer's metadata does before a partition is added."""
    hidden = {(BEHAVIORAL, 1)}

    def metadata(kafka):
        found = topic_partitions(kafka)
        return {t: {p for p in parts or () if (t, p) not in hidden} for t, parts in found.items()}

    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 2)
        _produce(broker.bootstrap, 0, 4)
        _produce(broker.bootstrap, 1, 6)
        store = EmbeddedSpeedStore(block_size=2)
        consumer = SpeedConsumer(store, broker.bootstrap, partition_refresh_s=0, metadata=metadata)
        kafka = consumer.connect()
        try:
            _poll_until(consumer, kafka, lambda: store.status().positions.get((BEHAVIORAL, 0)) == 4)
            assert (BEHAVIORAL, 1) not in store.status().positions
            with pytest.raises(CoverageError, match=r"'events.behavioral', 1\): not consumed"):
                store.customer("faults", "one", {(BEHAVIORAL, 0): 0, (BEHAVIORAL, 1): 0})
            hidden.clear()  # the partition appears in the metadata: assigned from its beginning
            _poll_until(consumer, kafka, lambda: store.status().positions.get((BEHAVIORAL, 1)) == 6)
            assert (
                store.customer("faults", "one", {(BEHAVIORAL, 0): 0, (BEHAVIORAL, 1): 0})["events_total"]
                == 10
            )
        finally:
            kafka.close()


def test_a_lost_position_is_reported_and_reads_fail_closed_until_a_batch_covers_it(tmp_path):
    tp = (BEHAVIORAL, 0)
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 1)
        _produce(broker.bootstrap, 0, 30)
        store = EmbeddedSpeedStore(block_size=5)
        consumer = SpeedConsumer(store, broker.bootstrap, max_poll_records=5)
        kafka = consumer.connect()
        state, client, auth = _serving(tmp_path, store)
        try:
            _poll_until(consumer, kafka, lambda: store.status().positions[tp] > 0)
            at = store.status().positions[tp]
            assert at <= 5
            kafka.seek(TopicPartition(*tp), at + 7)  # the position is lost: 7 records skipped
            _poll_until(consumer, kafka, lambda: store.status().positions[tp] == 30)
            kafka.seek(TopicPartition(*tp), 1000)  # past the data: the broker returns nothing
            _poll_until(consumer, kafka, lambda: store.status().positions[tp] == 1000)
            status = store.status()
            assert [(g.start, g.end) for g in status.gaps] == [(at, at + 7), (30, 1000)]
            assert status.lost_offsets == 7 + 970
            profile = client.get("/v1/customers/one/profile", headers=auth)
            assert profile.status_code == 503 and f"[{at}, {at + 7}) lost" in profile.json()["detail"]
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["speed_lost_offsets"] == 977
            assert ready.json()["speed_gaps"][0] == {
                "topic": BEHAVIORAL,
                "partition": 0,
                "start": at,
                "end": at + 7,
            }
            assert "lambdalytics_speed_lost_offsets_total 977.0" in client.get("/metrics").text
            store.on_batch_published({tp: 1000}, block_size=5)  # a batch version passes both gaps
            assert store.customer("faults", "one", {tp: 1000})["events_total"] == 0
            assert store.status().gaps == ()
        finally:
            state.close()
            kafka.close()


def test_readyz_is_caught_up_only_once_positions_reach_the_high_water_marks(tmp_path):
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 1)
        _produce(broker.bootstrap, 0, 30)
        store = EmbeddedSpeedStore(block_size=5)
        consumer = SpeedConsumer(store, broker.bootstrap, max_poll_records=5)
        kafka = consumer.connect()
        state, client, _ = _serving(tmp_path, store)
        tp = (BEHAVIORAL, 0)
        try:
            assert client.get("/readyz").json()["speed_caught_up"] is False  # connected, nothing fetched
            _poll_until(consumer, kafka, lambda: store.status().positions[tp] > 0)
            status = store.status()
            assert status.positions[tp] < status.high_water[tp] == 30  # records produced, not consumed
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["speed_caught_up"] is False
            _poll_until(consumer, kafka, lambda: store.status().caught_up)
            status = store.status()
            assert all(status.positions[p] >= status.high_water[p] for p in status.positions)
            assert status.positions[tp] == 30 and len(status.high_water) == len(EVENT_TOPICS)
            ready = client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["speed_caught_up"] is True
        finally:
            state.close()
            kafka.close()


def test_a_restarted_brokers_offsets_reach_the_store_on_the_logical_line(tmp_path):
    """Epoch 1 of a data folder starts its partitions at base 20 (B=10, 12 archived before): the store
    holds base + Kafka offset, covers a W at the base, and refuses the old W with the restart as reason."""
    from lambdalytics.infra.epochs import UNRECORDED_CLUSTER, EpochTable

    tp = (BEHAVIORAL, 0)
    table = EpochTable(tmp_path)
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 1)
        _produce(broker.bootstrap, 0, 3)
        table.seal_unrecorded(master_exists=True)  # epoch 0: the log the master came from
        store = EmbeddedSpeedStore(block_size=10)
        consumer = SpeedConsumer(store, broker.bootstrap, max_poll_records=5, epochs=table)
        with pytest.raises(KafkaError, match="no restart epoch"):  # the archiver has not entered it yet
            consumer.connect()
        assert "no restart epoch" in consumer.coverage_reason({})
        epoch = table.enter(broker.cluster_id, {(t, 0): 12 for t in EVENT_TOPICS}, 10)
        assert (epoch.number, table.epochs()[0].cluster_id) == (1, UNRECORDED_CLUSTER)
        kafka = consumer.connect()
        try:
            _poll_until(consumer, kafka, lambda: store.status().caught_up)
            status = store.status()
            assert status.positions[tp] == 23 and status.high_water[tp] == 23  # base 20 + 3 records
            assert status.gaps == ()  # [12, 20) is no loss: it never existed
            at_base = {(t, 0): 20 for t in EVENT_TOPICS}
            assert consumer.coverage_reason(at_base) is None
            assert store.customer("faults", "one", at_base)["events_total"] == 3
            old = {(t, 0): 10 for t in EVENT_TOPICS}
            assert "the broker restarted: epoch 1" in consumer.coverage_reason(old)
            with pytest.raises(CoverageError):
                store.customer("faults", "one", old)
            # a reconnect continues where the store is, on the same line
            kafka.close()
            _produce(broker.bootstrap, 0, 2, start=3)
            kafka = consumer.connect()
            _poll_until(consumer, kafka, lambda: store.status().positions[tp] == 25)
            assert store.customer("faults", "one", at_base)["events_total"] == 5
        finally:
            kafka.close()

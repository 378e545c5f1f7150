"""Re-sends beyond any window, end to end: the real broker, archiver, Spark batch, speed consumer and API.

Originals are archived and covered by a batch version; then, to a serving process opened the way
``lambdalytics serve`` opens it (``store_config`` → the store reads ``<data_dir>/event_index``), their
copies arrive 25 h later in broker time, one record is stamped 48 h ahead, and a copy of an event only
the speed side holds follows it. Every answer counts each event once, before and after the next batch.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from lambdalytics.batch.archiver import Archiver
from lambdalytics.batch.job import run_batch
from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.kafka_io import ensure_topics
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.events import validate_event
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.config import store_config
from lambdalytics.speed.consumer import SpeedConsumer
from lambdalytics.speed.factory import open_store

from ..serving.strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.e2e
HOUR = 3_600_000


def _send(bootstrap: str, events: list[dict], at_ms: int) -> None:
    """Each event with the broker (create) time ``at_ms``, acknowledged."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for obj in events:
        event = validate_event(obj)
        producer.send(event.topic, key=event.key, value=event.to_json(), timestamp_ms=at_ms).get(30)
    producer.close()


def _truth(events: list[dict]) -> dict[str, int]:
    """Events per customer, each event_id once."""
    out: dict[str, int] = {}
    for e in {e["event_id"]: e for e in events}.values():
        out[e["customer_id"]] = out.get(e["customer_id"], 0) + 1
    return out


def test_resends_25h_later_and_a_record_48h_ahead_count_once(kafka_bootstrap, tmp_path, unique, spark):
    ensure_topics(kafka_bootstrap, 6)
    tenant = f"resend-{unique}"
    events = [
        {**e, "tenant_id": tenant}
        for e in generate(
            GeneratorConfig(seed=23, rate=4, duration_s=30, tenants=("demo-food",), customers_per_tenant=6)
        )
    ]
    originals, recent = events[: len(events) // 2], events[len(events) // 2 :]
    settings = Settings(
        data_dir=tmp_path,
        block_size=1,  # W = everything archived: the originals are the batch view's
        admin_token=ADMIN_TOKEN,
        token_secret=TOKEN_SECRET,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
    )
    now = int(time.time() * 1000)
    _send(kafka_bootstrap, originals, now)
    Archiver(kafka_bootstrap, tmp_path, max_batch_seconds=0.5).run(idle_exit_seconds=2)
    first = run_batch(settings, spark=spark, show_progress=False)
    assert first is not None and sum(first.watermark.values()) > 0

    store = open_store(store_config(settings))
    state = ServingState(settings, store, bootstrap=kafka_bootstrap)
    state.loader.refresh()
    consumer = SpeedConsumer(store, kafka_bootstrap).start()
    client = TestClient(create_app(state))
    auth = {"Authorization": f"Bearer {state.credentials.registry.create(tenant, 're-sends')}"}

    def answers() -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for customer in _truth(events):
            r = client.get(f"/v1/customers/{customer}/profile", headers=auth)
            out[customer] = r.json()["metrics"]["events_total"] if r.status_code == 200 else None
        return out

    def settles_at(expected: dict[str, int], timeout_s: float = 120.0) -> dict[str, int | None]:
        deadline, got = time.monotonic() + timeout_s, {}
        while time.monotonic() < deadline:
            if (got := answers()) == expected:
                time.sleep(1.0)  # and stays there once the consumer has read everything
                return answers()
            time.sleep(0.2)
        return got

    try:
        _send(kafka_bootstrap, recent, now + HOUR)  # only the speed side holds these
        _send(kafka_bootstrap, originals, now + 25 * HOUR)  # copies of batch events, beyond 24 h
        _send(kafka_bootstrap, recent[:1], now + 48 * HOUR)  # a record stamped two days ahead ...
        _send(kafka_bootstrap, recent[1:], now + HOUR + 1)  # ... then copies of recent events
        expected = {c: n for c, n in _truth(events).items() if n}
        assert settles_at(expected) == expected
        assert store.status().duplicates >= len(originals) + len(recent)

        Archiver(kafka_bootstrap, tmp_path, max_batch_seconds=0.5).run(idle_exit_seconds=2)
        second = run_batch(settings, spark=spark, show_progress=False)
        assert state.loader.refresh() and second.batch_version == first.batch_version + 1
        assert settles_at(expected) == expected  # the batch counts every copy once too
    finally:
        consumer.stop()
        state.close()

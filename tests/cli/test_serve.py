"""The embedded API as ``lambdalytics serve`` builds it: a stalled speed consumer makes reads fail closed."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer

from lambdalytics.cli import serve
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics

from ..serving.strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.integration


def _until(check, timeout_s: float = 60.0):
    """Poll ``check`` until it returns something truthy; return that (or the last falsy value)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_reads_turn_503_with_the_reason_while_the_consumer_stalls_and_recover_after(
    kafka_bootstrap, tmp_path, monkeypatch
):
    ensure_topics(kafka_bootstrap, 6)
    for name, value in {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "DATA_DIR": str(tmp_path),
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "TOKEN_SECRET": TOKEN_SECRET,
        "SPEED_STALE_SECONDS": "3",
    }.items():
        monkeypatch.setenv(f"LAMBDALYTICS_{name}", value)
    monkeypatch.setattr(serve, "die_with_parent", lambda: None)  # this is the test process
    hang = threading.Event()  # set: every poll of the speed consumer blocks (a stalled fetch)
    real_poll = KafkaConsumer.poll

    def poll(self, *args, **kwargs):
        while hang.is_set():
            time.sleep(0.05)
        return real_poll(self, *args, **kwargs)

    monkeypatch.setattr(KafkaConsumer, "poll", poll)
    tenant = f"stale-{uuid.uuid4().hex[:8]}"
    app = serve.create_embedded_app()
    key = app.state.serving.credentials.registry.create(tenant, tenant)
    headers = {"Authorization": f"Bearer {key}"}
    with EventProducer(kafka_bootstrap) as producer:
        producer.send_obj(
            {
                "event_id": "e1",
                "tenant_id": tenant,
                "customer_id": "c1",
                "event_type": "page_view",
                "event_time": "2026-01-01T00:00:00Z",
            }
        )
    try:
        with TestClient(app) as client:

            def profile():
                return client.get("/v1/customers/c1/profile", headers=headers)

            assert _until(lambda: profile().status_code == 200)
            assert _until(lambda: client.get("/readyz").status_code == 200)

            hang.set()
            stale = _until(lambda: (r := profile()).status_code == 503 and r)
            assert stale, "a stalled consumer kept answering 200"
            assert "speed consumer made no progress" in stale.json()["detail"]
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert "no progress" in ready.json()["speed_stale"] and "no progress" in ready.json()["error"]
            assert ready.json()["workers"]["speed-consumer"]["state"] == "running"  # alive, but stuck

            hang.clear()
            assert _until(lambda: profile().status_code == 200)
            assert profile().json()["metrics"]["events_total"] == 1
            assert _until(lambda: client.get("/readyz").status_code == 200)
            metrics = client.get("/metrics").text
            assert 'lambdalytics_worker_up{worker="speed-consumer"} 1.0' in metrics
            assert 'lambdalytics_worker_restarts_total{worker="batch-loader"} 0.0' in metrics
    finally:
        hang.clear()


def test_pinot_refuses_a_data_folder_whose_restart_epoch_begins_above_offset_0(tmp_path):
    """Pinot compares the Kafka offsets it consumed itself with W: it cannot serve logical offsets."""
    from lambdalytics.infra.epochs import EpochTable

    table = EpochTable(tmp_path)
    assert serve._pinot_epoch_gap(table) is None  # never restarted
    table.enter("cluster-a", {}, 10)
    assert serve._pinot_epoch_gap(table) is None  # one cluster, base 0
    table.enter("cluster-b", {("events.behavioral", 0): 3}, 10)
    assert "Pinot" in serve._pinot_epoch_gap(table) and "epoch 1" in serve._pinot_epoch_gap(table)

"""produce → archive → batch → speed → API on the real broker, real Spark and Delta, against ground truth,
with the API answering throughout a batch run and its version swap."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from lambdalytics.batch.archiver import Archiver
from lambdalytics.batch.job import run_batch
from lambdalytics.cli.sources.generator import GeneratorConfig, generate
from lambdalytics.infra.kafka_io import EventProducer, ensure_topics
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.events import validate_event
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.consumer import SpeedConsumer
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from .strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.e2e


def truth(events: list[dict]) -> dict[str, dict]:
    """Per customer: events, orders, revenue (in currency units) over the deduplicated events."""
    seen, out = set(), {}
    for e in events:
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        c = out.setdefault(e["customer_id"], {"events_total": 0, "orders": 0, "revenue_micros": 0})
        c["events_total"] += 1
        c["orders"] += e["event_type"] == "order_placed"
        if e["event_type"] == "order_paid":
            c["revenue_micros"] += round(e["amount"] * 1_000_000)
    return out


def produce(bootstrap: str, events: list[dict]) -> None:
    with EventProducer(bootstrap) as producer:
        for e in events:
            producer.send_obj(e)


def test_pipeline_end_to_end(kafka_bootstrap, tmp_path, unique, spark):
    ensure_topics(kafka_bootstrap, 6)
    tenant = f"e2e-{unique}"
    stream = [
        {**e, "tenant_id": tenant}
        for e in generate(
            GeneratorConfig(
                seed=17,
                rate=8,
                duration_s=120,
                duplicates=0.05,
                late=0.1,
                tenants=("demo-food",),
                customers_per_tenant=30,
            )
        )
    ]
    for e in stream:
        validate_event(e)
    first, second = stream[: len(stream) // 2], stream[len(stream) // 2 :]
    settings = Settings(
        data_dir=tmp_path,
        block_size=5,
        admin_token=ADMIN_TOKEN,
        token_secret=TOKEN_SECRET,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
    )
    store = EmbeddedSpeedStore(block_size=5)
    state = ServingState(settings, store, bootstrap=kafka_bootstrap)
    state.loader.refresh()
    consumer = SpeedConsumer(store, kafka_bootstrap).start()
    client = TestClient(create_app(state))
    key = client.post(
        "/v1/admin/tenants",
        json={"tenant_id": tenant, "name": "e2e"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()["api_key"]
    h = {"Authorization": f"Bearer {key}"}

    def answers_equal(expected: dict[str, dict]) -> bool:
        for customer, want in expected.items():
            r = client.get(f"/v1/customers/{customer}/profile", headers=h)
            if r.status_code != 200:
                return False
            m = r.json()["metrics"]
            if (m["events_total"], m["orders"], round(m["revenue"] * 1_000_000)) != (
                want["events_total"],
                want["orders"],
                want["revenue_micros"],
            ):
                return False
        return True

    def eventually(expected, timeout_s=120.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if answers_equal(expected):
                return True
            time.sleep(0.2)
        return False

    try:
        produce(kafka_bootstrap, first)
        assert eventually(truth(first)), "speed-only answers (no batch yet) must equal the truth"

        Archiver(kafka_bootstrap, tmp_path, max_batch_seconds=0.5).run(idle_exit_seconds=2)
        produce(kafka_bootstrap, second)
        expected = truth(first + second)
        assert eventually(expected)

        # a batch run and the swap to its version, with the API answering all the while
        wrong: list[int] = []
        stop = threading.Event()

        def hammer():
            while not stop.is_set():
                if not answers_equal(expected):
                    wrong.append(1)

        watcher = threading.Thread(target=hammer)
        watcher.start()
        manifest = run_batch(settings, spark=spark, show_progress=False)
        assert state.loader.refresh()
        time.sleep(0.5)
        stop.set()
        watcher.join()
        assert manifest.batch_version == 1 and state.loader.current().version == 1
        assert sum(manifest.watermark.values()) > 0
        assert wrong == [], "an answer differed from the truth during the batch run or the swap"
        assert answers_equal(expected)
        freshness = client.get(f"/v1/customers/{first[0]['customer_id']}/profile", headers=h).json()[
            "freshness"
        ]
        assert freshness["batch_version"] == 1 and freshness["batch_watermark_time"]

        # data quality: the archiver's ledger against the stream itself (every record arrived in this run,
        # and the generator's clock lies months before it, so every record is late)
        Archiver(kafka_bootstrap, tmp_path, max_batch_seconds=0.5).run(idle_exit_seconds=2)
        quality = client.get("/v1/quality?window=1d", headers=h).json()["metrics"]
        first_copies = list({e["event_id"]: e for e in reversed(stream)}.values())
        orders = [e for e in first_copies if e["event_type"] == "order_placed"]
        assert quality["duplicate_rate"]["records"] == quality["late_event_rate"]["late"] == len(stream)
        assert quality["duplicate_rate"]["duplicates"] == len(stream) - len(first_copies) > 0
        assert quality["attributed_order_share"]["orders"] == len(orders) > 0
        assert quality["attributed_order_share"]["attributed_orders"] == sum(
            e.get("campaign_id") is not None for e in orders
        )
        assert quality["dead_letters"]["total"] == 0
    finally:
        consumer.stop()
        state.close()

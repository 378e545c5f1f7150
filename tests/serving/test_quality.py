"""``GET /v1/quality`` answers the caller's tenant only, from the ledger's window of arrival hours; the
unknown-tenant bucket is the operator's (``/v1/admin/quality``, Prometheus); no ledger yet is a 503."""

from __future__ import annotations

import time

import pytest

from lambdalytics.infra.quality_ledger import Observation, QualityLedger, ledger_path
from lambdalytics.schemas.catalog import HOUR_MS
from lambdalytics.schemas.catalog.quality import QUALITY
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from .apps import bearer, embed_token, serving_app
from .strong_secrets import ADMIN_TOKEN

pytestmark = pytest.mark.unit
TOPIC = "events.transaction"


@pytest.fixture
def app(tmp_path):
    client, keys, state = serving_app(tmp_path, EmbeddedSpeedStore(block_size=10), ("alpha", "beta"))
    yield client, keys, tmp_path
    state.close()


def _fill(data_dir, now: int) -> None:
    old = now - 3 * 24 * HOUR_MS
    seen = [
        ("alpha", now - 1000, ("records", "events", "identified_events")),
        ("alpha", now - 900, ("records", "duplicates")),
        ("alpha", now - 800, ("records", "events", "late", "orders", "attributed_orders")),
        ("alpha", now - 700, ("records", "events", "orders")),
        ("alpha", now - 600, ("dead_letters:invalid_json",)),
        ("alpha", old, ("records", "duplicates", "dead_letters:schema")),  # outside a 24 h window
        ("beta", now - 500, ("records",)),
        (None, now - 400, ("dead_letters:invalid_utf8",)),
    ]
    with QualityLedger.open(ledger_path(data_dir)) as ledger:
        ledger.record(
            [Observation(TOPIC, 0, i, t, at, c) for i, (t, at, c) in enumerate(seen)], covers={(TOPIC, 0): 8}
        )


def test_no_ledger_yet_is_a_503_with_the_reason(app):
    client, keys, _ = app
    r = client.get("/v1/quality", headers=bearer(keys["alpha"]))
    assert r.status_code == 503 and "the archiver creates it" in r.json()["detail"]


def test_a_tenant_reads_its_own_figures_over_the_window(app):
    client, keys, data_dir = app
    now = int(time.time() * 1000)
    _fill(data_dir, now)
    body = client.get("/v1/quality", headers=bearer(keys["alpha"])).json()
    assert body["tenant_id"] == "alpha" and body["window_seconds"] == 86400
    m = body["metrics"]
    assert m["dead_letters"] == {"total": 1, "by_reason": {"invalid_json": 1}}
    assert m["duplicate_rate"] == {"value": 0.25, "duplicates": 1, "records": 4}
    assert m["late_event_rate"]["value"] == 0.25
    assert m["attributed_order_share"] == {"value": 0.5, "attributed_orders": 1, "orders": 2}
    assert m["identified_event_share"] == {"value": round(1 / 3, 6), "identified_events": 1, "events": 3}
    assert 0 <= m["seconds_since_last_event"][TOPIC] < 60
    assert body["coverage"] == {"complete": True, "counted_from": {}}
    assert [d["name"] for d in body["definitions"]] == [q.name for q in QUALITY]

    week = client.get("/v1/quality?window=7d", headers=bearer(keys["alpha"])).json()["metrics"]
    assert week["dead_letters"]["by_reason"] == {"invalid_json": 1, "schema": 1}
    assert week["duplicate_rate"]["value"] == 0.4

    beta = client.get("/v1/quality", headers=bearer(keys["beta"])).json()["metrics"]
    assert beta["dead_letters"] == {"total": 0, "by_reason": {}}  # the unknown bucket is nobody's
    assert beta["duplicate_rate"]["value"] == 0 and beta["attributed_order_share"]["value"] is None


def test_the_unknown_tenant_bucket_is_the_operators_and_embeds_are_refused(app):
    client, keys, data_dir = app
    _fill(data_dir, int(time.time() * 1000))
    admin = client.get("/v1/admin/quality", headers=bearer(ADMIN_TOKEN)).json()
    assert admin["tenant_id"] == "(unknown)"
    assert admin["metrics"]["dead_letters"] == {"total": 1, "by_reason": {"invalid_utf8": 1}}
    assert client.get("/v1/admin/quality", headers=bearer(keys["alpha"])).status_code == 403
    token = embed_token(client, keys["alpha"], "c1")
    assert client.get("/v1/quality", headers=bearer(token)).status_code == 403
    assert client.get("/v1/quality?window=31d", headers=bearer(keys["alpha"])).status_code == 422


def test_prometheus_exports_the_counters_per_tenant(app):
    client, _, data_dir = app
    _fill(data_dir, int(time.time() * 1000))
    text = client.get("/metrics").text
    assert 'lambdalytics_quality_records_total{tenant="alpha"} 5.0' in text
    assert 'lambdalytics_quality_duplicates_total{tenant="alpha"} 2.0' in text
    assert 'lambdalytics_quality_events_total{tenant="alpha"} 3.0' in text
    assert 'lambdalytics_quality_identified_events_total{tenant="alpha"} 1.0' in text
    assert 'lambdalytics_quality_dead_letters_total{reason="invalid_utf8",tenant="(unknown)"} 1.0' in text
    assert f'lambdalytics_quality_last_event_timestamp_seconds{{tenant="beta",topic="{TOPIC}"}}' in text

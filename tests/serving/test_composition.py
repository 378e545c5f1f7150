"""How serving is composed: credentials open alone (as ``up`` opens them), telemetry reads its sources at
scrape time, the polled routes are the hot lane's and their operation ids name their resource."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.serving.api.hot import HotRoute
from lambdalytics.serving.credentials import Credentials
from lambdalytics.serving.main import HOT, create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from .strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.unit


def test_credentials_open_without_a_speed_store_and_every_opener_shares_them(tmp_path):
    settings = Settings(data_dir=tmp_path)  # dev: secrets generated once into DATA_DIR/run
    first = Credentials.open(settings)
    key = first.registry.create("acme", "Acme")
    token, _ = first.signer.issue("acme", "c1", 600)
    second = Credentials.open(settings)
    try:
        assert second.admin_token == first.admin_token
        assert second.registry.tenant_of(key) == "acme"
        assert second.signer.verify(token).customer_id == "c1"
    finally:
        first.close()
        second.close()


def test_credentials_refuse_generated_secrets_in_prod(tmp_path):
    with pytest.raises(RuntimeError, match="LAMBDALYTICS_ADMIN_TOKEN must be set"):
        Credentials.open(Settings(data_dir=tmp_path, env="prod", token_secret=TOKEN_SECRET))
    with pytest.raises(RuntimeError, match="LAMBDALYTICS_TOKEN_SECRET must be set"):
        Credentials.open(Settings(data_dir=tmp_path, env="prod", admin_token=ADMIN_TOKEN))


def test_metrics_are_read_from_their_sources_at_scrape_time(tmp_path):
    store = EmbeddedSpeedStore(block_size=10)
    dead = {"not_json": 2}
    state = ServingState(
        Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN, token_secret=TOKEN_SECRET),
        store,
        dead_lettered=lambda: dead,
    )
    client = TestClient(create_app(state))
    try:
        assert "lambdalytics_speed_events 0.0" in client.get("/metrics").text
        event = validate_event(
            {
                "event_id": "1",
                "tenant_id": "t",
                "customer_id": "c",
                "event_type": "page_view",
                "event_time": 0,
            }
        )
        store.ingest(to_row(event), "events.behavioral", 0, 0, 0)
        dead["too_large"] = 1
        text = client.get("/metrics").text
        assert "lambdalytics_speed_events 1.0" in text
        assert 'lambdalytics_invalid_records{reason="not_json"} 2.0' in text
        assert 'lambdalytics_invalid_records{reason="too_large"} 1.0' in text
        assert 'lambdalytics_request_seconds_count{method="GET",route="/metrics",status="200"}' in text
    finally:
        state.close()


def test_the_polled_routes_are_the_hot_lane_and_their_operation_ids_name_their_resource(tmp_path):
    state = ServingState(
        Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN, token_secret=TOKEN_SECRET),
        EmbeddedSpeedStore(block_size=10),
    )
    try:
        app = create_app(state)
        included = [r.original_router for r in app.routes if hasattr(r, "original_router")]
        assert included[: len(HOT)] == [m.router for m in HOT]  # polled routes match first
        assert all(isinstance(r, HotRoute) for m in HOT for r in m.router.routes)
        ids = {op["operationId"] for path in app.openapi()["paths"].values() for op in path.values()}
        assert {
            "customers-profile",
            "customers-timeseries",
            "campaigns-campaign_stats",
            "live-live_orders",
            "cohorts-retention",
        } <= ids
    finally:
        state.close()

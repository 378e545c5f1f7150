"""schemathesis against the OpenAPI spec: whatever it sends, the API never answers 5xx."""

from __future__ import annotations

import tempfile

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from lambdalytics.infra.quality_ledger import QualityLedger, ledger_path
from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from .strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.unit


def _app():
    store = EmbeddedSpeedStore(block_size=10)
    e = validate_event(
        {
            "event_id": "1",
            "tenant_id": "fuzz",
            "customer_id": "c1",
            "event_type": "order_placed",
            "order_id": "o",
            "campaign_id": "k",
            "event_time": 1_767_225_600_000,
        }
    )
    store.ingest(to_row(e), "events.transaction", 0, 0, 1_767_225_600_000)
    store.mark_caught_up()  # /readyz answers 503 by design until then
    data_dir = tempfile.mkdtemp()
    QualityLedger.open(ledger_path(data_dir)).close()  # what an archiver creates: /v1/quality answers 200
    state = ServingState(
        Settings(
            data_dir=data_dir,
            admin_token=ADMIN_TOKEN,
            token_secret=TOKEN_SECRET,
            rate_limit_per_s=1e6,
            rate_limit_burst=10**6,
            stream_max_seconds=0.1,  # GET /v1/live/stream ends on its own, so each call returns
            stream_interval_seconds=0.01,
        ),
        store,
    )
    state.loader.refresh()

    class NoKafka:  # POST /v1/events answers before producing when input is invalid; valid input is acked
        def send(self, event):
            class Ack:
                def get(self, timeout):
                    return None

            return Ack()

        def flush(self, timeout=None):
            pass

    state._producer = NoKafka()
    app = create_app(state)
    key = state.credentials.registry.create("fuzz", "fuzz")
    return app, key


APP, KEY = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    for token in (KEY, ADMIN_TOKEN):
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])

"""The serving app over a given speed store, with tenants created through the admin API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from lambdalytics.infra.settings import Settings
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.store import SpeedStore

from .strong_secrets import ADMIN_TOKEN, TOKEN_SECRET


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def serving_app(
    data_dir, store: SpeedStore, tenants: tuple[str, ...], **settings
) -> tuple[TestClient, dict[str, str], ServingState]:
    """(client, {tenant: api key}, state); rate limits high enough for a test unless ``settings`` say."""
    state = ServingState(
        Settings(
            data_dir=data_dir,
            admin_token=ADMIN_TOKEN,
            token_secret=TOKEN_SECRET,
            **{"rate_limit_per_s": 1000, "rate_limit_burst": 1000, **settings},
        ),
        store,
    )
    state.loader.refresh()
    client = TestClient(create_app(state))
    keys = {}
    for tenant in tenants:
        r = client.post(
            "/v1/admin/tenants", json={"tenant_id": tenant, "name": tenant}, headers=bearer(ADMIN_TOKEN)
        )
        assert r.status_code == 201, r.text
        keys[tenant] = r.json()["api_key"]
    return client, keys, state


def embed_token(client: TestClient, key: str, customer: str, ttl_seconds: int = 600) -> str:
    r = client.post(
        "/v1/embed-tokens", json={"customer_id": customer, "ttl_seconds": ttl_seconds}, headers=bearer(key)
    )
    assert r.status_code == 201, r.text
    return r.json()["token"]

"""Two tenants and one credential of every kind for tenant ``alpha``, on the real app (TestClient):
what the route × role matrix and the access attack suite ask with."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from .accounts import PASSWORD, sign_in
from .strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

T0 = 1_767_225_600_000
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    state: ServingState
    client: TestClient  # no credential of its own: pass headers
    keys: dict[str, str]  # tenant -> tenant key (every scope)
    scoped: dict[str, str] = field(default_factory=dict)  # scope -> a named key of alpha with that scope
    users: dict[str, TestClient] = field(default_factory=dict)  # role -> a browser signed in to alpha
    host_key: ec.EllipticCurvePrivateKey | None = None

    def browser(self, address: str = "testclient") -> TestClient:
        return TestClient(self.client.app, client=(address, 50000), follow_redirects=False)

    def user(self, tenant: str, email: str, role: str) -> TestClient:
        self.state.credentials.users.create(tenant, email, role, PASSWORD)
        browser = self.browser()
        assert sign_in(browser, email).status_code == 303
        return browser

    def host_token(self, claims: dict, *, kid: str = "host-1", key=None, alg: str = "ES256") -> str:
        body = {"t": "alpha", "exp": int(time.time()) + 600, **claims}
        return jwt.encode(body, key or self.host_key, alg, headers={"kid": kid})


def seeded_state(tmp_path, *, rate_limit: int) -> ServingState:
    """Tenants alpha and beta, customers c1 and c2 each: an order placed and paid, an ad impression."""
    store = EmbeddedSpeedStore(block_size=10)
    offset = 0
    for tenant in ("alpha", "beta"):
        for customer in ("c1", "c2"):
            for event in (
                {"event_type": "order_placed", "order_id": f"{customer}-o", "campaign_id": "spring"},
                {"event_type": "order_paid", "order_id": f"{customer}-o", "amount": 10, "currency": "EUR"},
                {"event_type": "ad_impression", "campaign_id": "spring", "cost": 0.01},
            ):
                e = validate_event(
                    {
                        **event,
                        "event_id": f"{tenant}-{customer}-{offset}",
                        "tenant_id": tenant,
                        "customer_id": customer,
                        "event_time": T0 + offset,
                    }
                )
                store.ingest(to_row(e), "events.transaction", 0, offset, T0 + offset)
                offset += 1
    settings = Settings(
        data_dir=tmp_path,
        admin_token=ADMIN_TOKEN,
        token_secret=TOKEN_SECRET,
        rate_limit_per_s=rate_limit,
        rate_limit_burst=rate_limit,
    )
    state = ServingState(settings, store)
    state.loader.refresh()
    return state


def create_tenants(client: TestClient) -> dict[str, str]:
    """alpha and beta through the admin API: tenant -> its key."""
    keys = {}
    for tenant in ("alpha", "beta"):
        r = client.post("/v1/admin/tenants", json={"tenant_id": tenant, "name": tenant}, headers=ADMIN)
        assert r.status_code == 201
        keys[tenant] = r.json()["api_key"]
    return keys


def make_world(tmp_path) -> World:
    state = seeded_state(tmp_path, rate_limit=100_000)
    state.runs.trigger = lambda: None  # never start Spark from these tests: a trigger answers 409
    client = TestClient(create_app(state), follow_redirects=False)
    keys = create_tenants(client)
    world = World(state, client, keys)
    for scope in ("read", "ingest", "admin"):
        r = client.post(
            "/v1/keys", json={"name": f"{scope} only", "scopes": [scope]}, headers=bearer(keys["alpha"])
        )
        assert r.status_code == 201, r.text
        world.scoped[scope] = r.json()["api_key"]
    for role in ("owner", "analyst", "viewer"):
        world.users[role] = world.user("alpha", f"{role}@alpha.example", role)
    world.host_key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(world.host_key.public_key(), as_dict=True)
    r = client.post("/v1/host-keys", json={"keys": [{**jwk, "kid": "host-1"}]}, headers=bearer(keys["alpha"]))
    assert r.status_code == 201, r.text
    return world

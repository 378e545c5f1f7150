"""Two tenants and one credential of every kind for tenant ``alpha``, on the real app (TestClient):
what the route × role matrix and the access attack suite ask with."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from .accounts import PASSWORD, sign_in
from .apps import bearer, serving_app
from .strong_secrets import ADMIN_TOKEN

T0 = 1_767_225_600_000
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


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


def seeded_store() -> EmbeddedSpeedStore:
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
    return store


def make_world(tmp_path) -> World:
    client, keys, state = serving_app(
        tmp_path, seeded_store(), ("alpha", "beta"), rate_limit_per_s=100_000, rate_limit_burst=100_000
    )
    state.runs.trigger = lambda: None  # never start Spark from these tests: a trigger answers 409
    state.erasures.command = ("true",)  # nor the durable purge of an erasure (it stays pending)
    client = TestClient(client.app, follow_redirects=False)
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

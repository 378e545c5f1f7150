"""Every route × every kind of credential: a route admits exactly the grants its ``Access`` declares.

Admitted credentials never get 401/403 (their request may still be a 404 or a 422); every other one gets
403 (401 without a credential). A route that declares nothing must be in ``PUBLIC``: adding a route
without a declaration fails here."""

from __future__ import annotations

import re

import pytest

from lambdalytics.serving.api.access import admits, api_routes
from lambdalytics.serving.rate_limit import RateLimiter

from .access_world import ADMIN, bearer, make_world

pytestmark = pytest.mark.unit

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/metrics"),
    ("GET", "/metrics"),
    ("GET", "/embed/widget.js"),
    ("GET", "/embed/{widget}"),
    ("GET", "/assets/{name}"),
    ("GET", "/dashboard"),
    ("GET", "/dashboard/login"),
    (
        "POST",
        "/dashboard/login",
    ),  # the sign-in form: its own CSRF token (tests/serving/test_access_attacks.py)
    ("POST", "/dashboard/logout"),  # the session's CSRF token (ditto)
    ("GET", "/dashboard/invite"),
    ("POST", "/dashboard/invite"),  # the invite token is the credential; the sign-in form's CSRF token
    ("POST", "/v1/invites/accept"),  # the invite token is the credential
}
PARAMS = {
    "customer_id": "c1",
    "campaign_id": "spring",
    "tenant_id": "zeta",  # no such tenant: the operator's calls answer 404, changing nothing
    "user_id": "usr_0000000000000000",
    "key_id": "key_0000000000000000",
    "kid": "no-such-kid",
    "erasure_id": "no-such-erasure",
}


def _routes(app):
    for route in api_routes(app.routes):
        for method in sorted(route.methods - {"HEAD"}):
            yield method, route


QUERIES = {"/v1/live/stream": "?topics=none"}
"""A stream admitted would stay open: an unknown topic makes it answer 422 once authorized."""


def _path(template: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PARAMS[m.group(1)], template) + QUERIES.get(template, "")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("matrix"))
    # hundreds of deliberate 401s from one address: the failed-authentication limit (tested on its own in
    # test_api_security.py) would answer 429 before the route's declaration is reached
    world.client.app.state.auth_failures = RateLimiter(1e6, 1_000_000)
    yield world
    world.state.close()


def _credentials(world):
    """name -> (grants it holds, how it asks: (client, headers for a safe request, for a write))."""
    signer = world.state.credentials.signer
    embed, _ = signer.issue("alpha", "c1", 600, campaigns=("spring",), cohorts=True)
    dashboard, _ = signer.issue_dashboard("alpha", 600)
    host = world.host_token({"c": "c1", "cp": ["spring"], "co": True})
    c = world.client
    out = {
        "nobody": (frozenset(), c, {}),
        "admin": (frozenset({"admin"}), c, ADMIN),
        "tenant key": (frozenset({"key:read", "key:ingest", "key:admin"}), c, bearer(world.keys["alpha"])),
        "dashboard token": (frozenset({"dashboard"}), c, bearer(dashboard)),
        "embed token": (frozenset({"embed"}), c, bearer(embed)),
        "host-signed embed token": (frozenset({"embed"}), c, bearer(host)),
    }
    for scope, key in world.scoped.items():
        out[f"{scope} key"] = (frozenset({f"key:{scope}"}), c, bearer(key))
    for role, browser in world.users.items():
        csrf = browser.get("/v1/session").json()["csrf_token"]
        out[role] = (frozenset({role}), browser, {"X-CSRF-Token": csrf})
    return out


def test_every_route_declares_what_it_admits_or_is_listed_public(world):
    undeclared = {(m, r.path) for m, r in _routes(world.client.app) if admits(r) is None}
    assert undeclared == PUBLIC
    spec = world.client.get("/openapi.json").json()
    for method, route in _routes(world.client.app):
        if route.include_in_schema and admits(route) is not None:
            assert spec["paths"][route.path][method.lower()]["x-admits"] == sorted(admits(route))


def test_every_route_and_every_credential(world):
    checked, problems = 0, []
    for name, (grants, client, headers) in _credentials(world).items():
        for method, route in _routes(world.client.app):
            declared = admits(route)
            if declared is None:
                continue
            body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            r = client.request(method, _path(route.path), headers=headers, **body)
            admitted = not grants.isdisjoint(declared)
            if admitted and r.status_code in (401, 403):
                problems.append(f"{name} refused by {method} {route.path}: {r.status_code} {r.text[:80]}")
            if not admitted and r.status_code != (403 if grants else 401):
                problems.append(f"{name} not refused by {method} {route.path}: {r.status_code} {r.text[:80]}")
            checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 12 * 25  # every credential kind × every declared route was asked


READERS = {"owner", "analyst", "viewer", "key:read", "dashboard", "embed"}
MANAGERS = {"owner", "key:admin"}
POLICY = {
    # the issue's roles, written out independently of the declarations they check
    ("GET", "/v1/customers/{customer_id}/profile"): READERS,
    ("GET", "/v1/customers/{customer_id}/timeseries"): READERS,
    ("GET", "/v1/campaigns/{campaign_id}/stats"): READERS,
    ("GET", "/v1/live/orders"): READERS,
    ("GET", "/v1/live/stream"): READERS,
    ("GET", "/v1/cohorts/retention"): READERS,
    ("GET", "/v1/segments"): READERS - {"embed"},  # lists the tenant's customers
    ("GET", "/v1/segments/customers"): READERS - {"embed"},
    ("GET", "/v1/branding"): READERS,
    ("GET", "/v1/quality"): READERS - {"embed"},  # the tenant's feed, not its customers' business
    ("GET", "/v1/admin/quality"): {"admin"},
    ("POST", "/v1/events"): {"key:ingest"},
    ("POST", "/v1/embed-tokens"): {"owner", "analyst", "key:read"},
    ("POST", "/v1/dashboard-tokens"): {"key:read"},
    ("POST", "/v1/users"): MANAGERS,
    ("GET", "/v1/users"): MANAGERS,
    ("PATCH", "/v1/users/{user_id}"): MANAGERS,
    ("DELETE", "/v1/users/{user_id}"): MANAGERS,
    ("POST", "/v1/keys"): MANAGERS,
    ("GET", "/v1/keys"): MANAGERS,
    ("DELETE", "/v1/keys/{key_id}"): MANAGERS,
    ("POST", "/v1/host-keys"): MANAGERS,
    ("GET", "/v1/host-keys"): MANAGERS,
    ("DELETE", "/v1/host-keys/{kid}"): MANAGERS,
    ("PUT", "/v1/branding"): MANAGERS,
    ("GET", "/v1/audit"): {"owner", "key:admin", "admin"},
    ("DELETE", "/v1/customers/{customer_id}"): MANAGERS,
    ("GET", "/v1/erasures/{erasure_id}"): MANAGERS,
    ("GET", "/v1/session"): {"owner", "analyst", "viewer"},
    ("POST", "/v1/admin/tenants"): {"admin"},
    ("POST", "/v1/admin/tenants/{tenant_id}/rotate-key"): {"admin"},
    ("POST", "/v1/admin/tenants/{tenant_id}/users"): {"admin"},
    ("PUT", "/v1/admin/tenants/{tenant_id}/branding"): {"admin"},
    ("GET", "/v1/admin/tenants/{tenant_id}/branding"): {"admin"},
    ("POST", "/v1/admin/batch-runs"): {"admin"},
    ("GET", "/v1/admin/batch-runs/latest"): {"admin"},
}


def test_the_declarations_are_the_documented_roles(world):
    """Viewers only read, analysts also share, owners and admin keys manage; ingest keys only ingest."""
    declared = {(m, r.path): admits(r) for m, r in _routes(world.client.app) if admits(r) is not None}
    assert declared == {k: frozenset(v) for k, v in POLICY.items()}

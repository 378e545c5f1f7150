"""Cross-tenant and token attacks through HTTP: no leak, the documented status codes, nothing else."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from lambdalytics.schemas.catalog import CATALOG
from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from .apps import bearer, serving_app
from .strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.unit
T0 = 1_767_225_600_000


@pytest.fixture
def api(tmp_path):
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
    return serving_app(tmp_path, store, ("alpha", "beta"))


def test_tenant_reads_only_its_own_customers_and_campaigns(api):
    client, keys, _ = api
    own = client.get("/v1/customers/c1/profile", headers=bearer(keys["alpha"]))
    assert own.status_code == 200 and own.json()["tenant_id"] == "alpha"
    assert own.json()["metrics"]["revenue"] == 10
    # beta's customer c1 exists under beta too, but alpha only ever sees its own numbers
    ghost = client.get("/v1/customers/nobody/profile", headers=bearer(keys["alpha"]))
    assert ghost.status_code == 404
    guessed = client.get("/v1/campaigns/autumn/stats", headers=bearer(keys["beta"]))
    assert guessed.status_code == 404 and guessed.json() == ghost.json()  # same body: no existence hint
    assert (
        client.get(
            "/v1/campaigns/spring/stats?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z",
            headers=bearer(keys["beta"]),
        ).json()["totals"]["conversions"]
        == 2
    )


def test_other_tenants_object_is_404_like_a_missing_one(api):
    client, keys, state = api
    e = validate_event(
        {
            "event_type": "page_view",
            "event_id": "only-beta",
            "tenant_id": "beta",
            "customer_id": "beta-only",
            "event_time": T0,
        }
    )
    state.speed.ingest(to_row(e), "events.behavioral", 0, 0, T0)
    assert client.get("/v1/customers/beta-only/profile", headers=bearer(keys["beta"])).status_code == 200
    leak = client.get("/v1/customers/beta-only/profile", headers=bearer(keys["alpha"]))
    missing = client.get("/v1/customers/never-existed/profile", headers=bearer(keys["alpha"]))
    assert leak.status_code == missing.status_code == 404 and leak.json() == missing.json()


def test_embed_token_reads_one_customer_only(api):
    client, keys, _ = api
    r = client.post(
        "/v1/embed-tokens", json={"customer_id": "c1", "ttl_seconds": 600}, headers=bearer(keys["alpha"])
    )
    assert r.status_code == 201
    token = r.json()["token"]
    assert client.get("/v1/customers/c1/profile", headers=bearer(token)).status_code == 200
    assert client.get("/v1/customers/c2/profile", headers=bearer(token)).status_code == 404
    assert client.get("/v1/customers/c1/timeseries?metric=orders", headers=bearer(token)).status_code == 200
    assert client.get("/v1/customers/c2/timeseries?metric=orders", headers=bearer(token)).status_code == 404
    assert (
        client.get("/v1/live/orders", headers=bearer(token)).status_code == 200
    )  # the tenant's live metrics
    # scopes the token was not given: a campaign looks missing, the cohort table is forbidden
    assert client.get("/v1/campaigns/spring/stats", headers=bearer(token)).status_code == 404
    assert client.get("/v1/cohorts/retention", headers=bearer(token)).status_code == 403
    assert (
        client.post("/v1/embed-tokens", json={"customer_id": "c2"}, headers=bearer(token)).status_code == 403
    )


def test_embed_token_scopes_campaigns_and_cohorts(api):
    client, keys, _ = api
    r = client.post(
        "/v1/embed-tokens",
        json={"campaign_ids": ["spring"], "cohorts": True},
        headers=bearer(keys["beta"]),
    )
    assert r.status_code == 201
    token = r.json()["token"]
    stats = client.get(
        "/v1/campaigns/spring/stats?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z",
        headers=bearer(token),
    )
    assert stats.status_code == 200 and stats.json()["totals"]["conversions"] == 2  # beta's, not alpha's
    assert client.get("/v1/campaigns/autumn/stats", headers=bearer(token)).status_code == 404
    assert client.get("/v1/cohorts/retention", headers=bearer(token)).status_code == 200
    assert client.get("/v1/customers/c1/profile", headers=bearer(token)).status_code == 404  # no customer
    assert client.post("/v1/events", json={}, headers=bearer(token)).status_code == 403


def test_dashboard_token_reads_its_tenant_and_writes_nothing(api):
    client, keys, _ = api
    r = client.post("/v1/dashboard-tokens", json={}, headers=bearer(keys["alpha"]))
    assert r.status_code == 201
    token = r.json()["token"]
    assert client.get("/v1/customers/c2/profile", headers=bearer(token)).json()["tenant_id"] == "alpha"
    assert client.get("/v1/campaigns/spring/stats", headers=bearer(token)).status_code == 200
    assert client.get("/v1/cohorts/retention", headers=bearer(token)).status_code == 200
    assert client.post("/v1/events", json={}, headers=bearer(token)).status_code == 403
    assert client.post("/v1/embed-tokens", json={}, headers=bearer(token)).status_code == 403
    assert client.post("/v1/dashboard-tokens", json={}, headers=bearer(token)).status_code == 403
    assert client.post("/v1/embed-tokens", json={}, headers=bearer("not-a-token")).status_code == 401


def test_forged_tampered_and_expired_tokens_are_401(api):
    client, keys, state = api
    forged = jwt.encode(
        {"k": "embed", "t": "alpha", "c": "c1", "exp": int(time.time()) + 60}, "wrong-secret", "HS256"
    )
    good, _ = state.credentials.signer.issue("alpha", "c1", 60)
    header, payload, signature = good.split(".")
    tampered_claims = jwt.utils.base64url_encode(
        b'{"k":"embed","t":"beta","c":"c1","exp":9999999999}'
    ).decode()
    expired, _ = state.credentials.signer.issue("alpha", "c1", 1, now=time.time() - 3600)
    none_alg = jwt.encode(
        {"k": "embed", "t": "alpha", "c": "c1", "exp": int(time.time()) + 60}, None, algorithm="none"
    )
    for token in (forged, f"{header}.{tampered_claims}.{signature}", none_alg, "llk_guessed", "garbage"):
        r = client.get("/v1/customers/c1/profile", headers=bearer(token))
        assert r.status_code == 401, token
    r = client.get("/v1/customers/c1/profile", headers=bearer(expired))
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    assert client.get("/v1/customers/c1/profile").status_code == 401
    assert client.get("/v1/customers/c1/profile", headers={"Authorization": "Basic abc"}).status_code == 401


def test_admin_routes_need_the_admin_token_and_keys_rotate(api):
    client, keys, _ = api
    assert (
        client.post(
            "/v1/admin/tenants", json={"tenant_id": "x", "name": "x"}, headers=bearer(keys["alpha"])
        ).status_code
        == 403
    )
    assert client.post("/v1/admin/batch-runs", headers=bearer(keys["alpha"])).status_code == 403
    r = client.post("/v1/admin/tenants/alpha/rotate-key", headers=bearer(ADMIN_TOKEN))
    assert r.status_code == 200
    assert client.get("/v1/customers/c1/profile", headers=bearer(keys["alpha"])).status_code == 401
    assert client.get("/v1/customers/c1/profile", headers=bearer(r.json()["api_key"])).status_code == 200
    assert (
        client.post(
            "/v1/admin/tenants", json={"tenant_id": "alpha", "name": "again"}, headers=bearer(ADMIN_TOKEN)
        ).status_code
        == 409
    )
    assert (
        client.post(
            "/v1/admin/tenants", json={"tenant_id": "bad id!", "name": "x"}, headers=bearer(ADMIN_TOKEN)
        ).status_code
        == 422
    )


def test_events_endpoint_validates_all_before_producing_anything(api):
    client, keys, state = api
    produced = []

    class Recorder:
        def send(self, event):
            produced.append(event)

            class Done:
                def get(self, timeout):
                    return None

            return Done()

        def flush(self, timeout=None):
            pass

    state._producer = Recorder()
    ok = {"event_id": "n1", "customer_id": "c9", "event_type": "page_view", "event_time": T0}
    wrong_tenant = {**ok, "event_id": "n2", "tenant_id": "beta"}
    r = client.post(
        "/v1/events", json=[ok, wrong_tenant, {"event_type": "nope"}], headers=bearer(keys["alpha"])
    )
    assert r.status_code == 422 and produced == []
    reasons = [(e["index"], e["reason"]) for e in r.json()["detail"]]
    assert reasons == [(1, "tenant_mismatch"), (2, "unknown_event_type")]
    r = client.post("/v1/events", json=ok, headers=bearer(keys["alpha"]))
    assert r.status_code == 202 and r.json() == {"accepted": 1}
    assert produced[0].tenant_id == "alpha"  # filled from the key


def test_bad_parameters_are_422_and_rate_limit_is_429(api, tmp_path):
    client, keys, state = api
    h = bearer(keys["alpha"])
    assert (
        client.get("/v1/customers/c1/timeseries?metric=avg_first_response_seconds", headers=h).status_code
        == 422
    )
    assert (
        client.get("/v1/customers/c1/timeseries?metric=orders&start=yesterday", headers=h).status_code == 422
    )
    assert (
        client.get("/v1/customers/c1/timeseries?metric=orders&granularity=week", headers=h).status_code == 422
    )
    assert client.get("/v1/live/orders?window=forever", headers=h).status_code == 422
    client.app.state.limiter.rate, client.app.state.limiter.burst = 0.01, 2
    client.app.state.limiter._buckets.clear()
    codes = [client.get("/v1/live/orders", headers=h).status_code for _ in range(4)]
    assert codes[:2] == [200, 200] and codes[2] == 429
    r = client.get("/v1/live/orders", headers=h)
    assert int(r.headers["Retry-After"]) >= 1


def test_health_ready_metrics_and_catalog(api):
    client, _, _ = api
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 503  # the speed store has not caught up with Kafka
    text = client.get("/metrics").text
    assert "lambdalytics_request_seconds_bucket" in text and "lambdalytics_batch_version" in text
    dictionary = client.get("/v1/metrics").json()
    names = {m["name"] for m in dictionary}
    assert {"avg_order_value", "ctr", "p90_wait_seconds"} <= names and "csat_score_sum" not in names
    assert dictionary == CATALOG.describe()  # labels and display hints reach the front-end as published
    ctr = next(m for m in dictionary if m["name"] == "ctr")
    assert (ctr["label"], ctr["short_label"], ctr["series"], ctr["additive"]) == (
        "Click-through rate",
        "CTR",
        True,
        False,
    )


def test_speed_side_that_cannot_cover_the_watermark_fails_closed(api):
    """A store that cannot answer for W gives 503 with the reason, never a smaller number."""
    client, keys, state = api
    state.speed.drop_below({("events.transaction", 0): 10})  # newer than what serving's index (W = 0) covers
    r = client.get("/v1/customers/c1/profile", headers=bearer(keys["alpha"]))
    assert r.status_code == 503 and "watermark" in r.json()["detail"] and r.headers["Retry-After"] == "1"


def test_rotating_a_key_revokes_the_tokens_it_minted(api):
    client, keys, state = api
    old = bearer(keys["alpha"])
    embed = client.post("/v1/embed-tokens", json={"customer_id": "c1"}, headers=old).json()["token"]
    dash = client.post("/v1/dashboard-tokens", json={}, headers=old).json()["token"]
    beta_embed = client.post("/v1/embed-tokens", json={"customer_id": "c1"}, headers=bearer(keys["beta"]))
    for token in (embed, dash):
        assert client.get("/v1/customers/c1/profile", headers=bearer(token)).status_code == 200
    new_key = client.post("/v1/admin/tenants/alpha/rotate-key", headers=bearer(ADMIN_TOKEN)).json()["api_key"]
    for token in (embed, dash):
        r = client.get("/v1/customers/c1/profile", headers=bearer(token))
        assert r.status_code == 401 and "revoked" in r.json()["detail"]
    # what the new key mints works, and the other tenant's tokens are untouched
    fresh = client.post("/v1/embed-tokens", json={"customer_id": "c1"}, headers=bearer(new_key)).json()[
        "token"
    ]
    assert client.get("/v1/customers/c1/profile", headers=bearer(fresh)).status_code == 200
    token = beta_embed.json()["token"]
    assert client.get("/v1/customers/c1/profile", headers=bearer(token)).status_code == 200
    # a token claiming no generation, or another one, is refused even with a valid signature
    for claims in ({}, {"g": None}, {"g": 99}, {"g": True}):
        forged = jwt.encode(
            {"k": "embed", "t": "alpha", "c": "c1", "exp": int(time.time()) + 60, **claims},
            TOKEN_SECRET,
            "HS256",
        )
        assert client.get("/v1/customers/c1/profile", headers=bearer(forged)).status_code == 401, claims


def test_other_workers_honour_a_rotation_within_the_key_cache_time(api, monkeypatch):
    """Another worker (its own registry over the same file) trusts its cache for CACHE_SECONDS (1 s):
    that is the bound on how long a revoked token, or the old key, still works there."""
    _, keys, state = api
    from lambdalytics.serving import auth

    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    other = auth.TenantRegistry(state.settings.data_dir / "run" / "tenants.sqlite")
    signer = state.credentials.signer
    token, _ = signer.issue("alpha", "c1", 600, generation=other.lookup(keys["alpha"])[1])
    assert auth.verify_token(token, registry=other, signer=signer).customer_id == "c1"
    state.credentials.registry.rotate("alpha")  # in this worker
    clock[0] += auth.TenantRegistry.CACHE_SECONDS / 2
    assert other.tenant_of(keys["alpha"]) == "alpha"  # still cached there
    assert auth.verify_token(token, registry=other, signer=signer).customer_id == "c1"
    clock[0] += auth.TenantRegistry.CACHE_SECONDS
    assert other.tenant_of(keys["alpha"]) is None
    with pytest.raises(auth.AuthError, match="revoked"):
        auth.verify_token(token, registry=other, signer=signer)
    other.close()


def test_a_registry_from_before_generations_is_migrated(tmp_path):
    import sqlite3

    from lambdalytics.serving.auth import TenantRegistry, _hash

    path = tmp_path / "tenants.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE tenants (tenant_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
        "key_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL)"
    )
    db.execute("INSERT INTO tenants VALUES ('old', 'Old', ?, 0)", (_hash("llk_old"),))
    db.commit()
    db.close()
    registry = TenantRegistry(path)
    assert registry.lookup("llk_old") == ("old", 1) and registry.generation("old") == 1
    registry.rotate("old")
    assert registry.generation("old") == 2
    registry.close()


def _slow_limits(client, burst: int) -> None:
    limiter = client.app.state.limiter
    limiter.rate, limiter.burst = 0.001, burst
    limiter._buckets.clear()


def test_each_credential_has_its_own_bucket(api):
    """The tenant key, its dashboard token and a campaign token no longer drain one shared bucket."""
    client, keys, _ = api
    key = bearer(keys["alpha"])
    dash = bearer(client.post("/v1/dashboard-tokens", json={}, headers=key).json()["token"])
    campaign = bearer(
        client.post("/v1/embed-tokens", json={"campaign_ids": ["spring"]}, headers=key).json()["token"]
    )
    _slow_limits(client, burst=2)
    assert [client.get("/v1/customers/c1/profile", headers=key).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    assert client.get("/v1/customers/c1/profile", headers=dash).status_code == 200
    assert client.get("/v1/campaigns/spring/stats", headers=campaign).status_code == 200
    # the same token however the header spaces it: one credential, one bucket
    token = dash["Authorization"].removeprefix("Bearer ")
    assert (
        client.get("/v1/customers/c1/profile", headers={"Authorization": f"Bearer  {token} "}).status_code
        == 200
    )
    assert client.get("/v1/customers/c1/profile", headers=dash).status_code == 429


def test_tenant_wide_routes_are_limited_per_tenant_whatever_the_number_of_tokens(api):
    """N customer embed tokens are not N times the limit on the tenant's live metrics and cohorts."""
    client, keys, _ = api
    key = bearer(keys["alpha"])
    tokens = [
        bearer(
            client.post(
                "/v1/embed-tokens", json={"customer_id": f"c{i}", "cohorts": True}, headers=key
            ).json()["token"]
        )
        for i in range(4)
    ]
    _slow_limits(client, burst=3)
    codes = [client.get("/v1/live/orders", headers=t).status_code for t in tokens]
    assert codes == [200, 200, 200, 429]
    assert client.get("/v1/cohorts/retention", headers=tokens[3]).status_code == 429  # the same tenant
    assert client.get("/v1/customers/c3/profile", headers=tokens[3]).status_code != 429  # per credential
    assert client.get("/v1/live/orders", headers=bearer(keys["beta"])).status_code == 200  # another tenant


def test_the_bucket_table_is_bounded():
    from lambdalytics.serving.rate_limit import RateLimiter

    limiter = RateLimiter(0.001, 1, capacity=3)
    for i in range(10):
        assert limiter.take(f"k{i}") == 0
    assert len(limiter) == 3
    assert limiter.take("k9") > 0  # a recent bucket is kept (still empty)
    assert limiter.take("k0") == 0  # the least recently used went first


def test_a_flood_of_failed_authentications_from_one_address_gets_429(api):
    client, keys, _ = api
    flood = TestClient(client.app, client=("203.0.113.9", 4000), follow_redirects=False)
    codes = [flood.get("/v1/live/orders", headers=bearer("llk_guess")).status_code for _ in range(25)]
    assert codes[:20] == [401] * 20 and codes[20:] == [429] * 5
    r = flood.get("/v1/customers/c1/profile", headers=bearer("garbage"))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    login = flood.post(
        "/dashboard/login",
        content="key=llk_guess",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert login.status_code == 429
    # another address is not affected, and successful requests never count
    other = TestClient(client.app, client=("198.51.100.7", 4000))
    assert all(
        other.get("/v1/live/orders", headers=bearer(keys["alpha"])).status_code == 200 for _ in range(30)
    )
    assert other.get("/v1/live/orders", headers=bearer("llk_guess")).status_code == 401


def test_failed_dashboard_logins_count_as_failed_authentications(api):
    client, keys, _ = api
    guesser = TestClient(client.app, client=("203.0.113.10", 4000), follow_redirects=False)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    codes = [
        guesser.post("/dashboard/login", content="key=llk_guess", headers=form).status_code for _ in range(21)
    ]
    assert codes[:20] == [303] * 20 and codes[20] == 429


@pytest.mark.parametrize(
    "query",
    [
        "start=0000-01",  # year 0 does not exist
        "start=0001-01-01T00:00:00%2B01:00",  # year 0 in UTC
        "end=9999-12-31T23:59:59-01:00",  # year 10000 in UTC
        "start=9999-12-31T23:59:59-01:00&end=9999-12",
    ],
)
def test_times_outside_the_calendar_are_422_not_500(api, query):
    client, keys, _ = api
    h = bearer(keys["alpha"])
    for path in (
        "/v1/cohorts/retention",
        "/v1/customers/c1/timeseries?metric=orders",
        "/v1/campaigns/spring/stats",
    ):
        r = client.get(f"{path}{'&' if '?' in path else '?'}{query}", headers=h)
        assert r.status_code == 422, (path, query, r.text)
        assert r.json()["detail"].startswith(("start", "end")), r.text


def test_a_customer_id_with_a_slash_is_accepted_and_readable_percent_encoded(api):
    """Ingest accepts ``a/b`` (the contract allows it); reads name it ``a%2Fb`` (what the widgets send)."""
    client, keys, state = api
    produced = []

    class Acked:
        def send(self, event):
            produced.append(event)

            class Ack:
                def get(self, timeout):
                    return None

            return Ack()

    state._producer = Acked()
    event = {"event_id": "slash-1", "customer_id": "a/b", "event_type": "page_view", "event_time": T0}
    r = client.post("/v1/events", json=event, headers=bearer(keys["alpha"]))
    assert r.status_code == 202 and produced[0].customer_id == "a/b"
    state.speed.ingest(to_row(produced[0]), produced[0].topic, 0, 0, T0)  # what the speed consumer does
    profile = client.get("/v1/customers/a%2Fb/profile", headers=bearer(keys["alpha"]))
    assert profile.status_code == 200 and profile.json()["customer_id"] == "a/b"
    assert profile.json()["metrics"]["events_total"] == 1
    series = client.get(
        "/v1/customers/a%2fb/timeseries?metric=page_views&start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z",
        headers=bearer(keys["alpha"]),
    )  # a lowercase escape too
    assert series.status_code == 200 and [p["value"] for p in series.json()["points"]] == [1]
    token = client.post(
        "/v1/embed-tokens", json={"customer_id": "a/b"}, headers=bearer(keys["alpha"])
    ).json()["token"]
    assert client.get("/v1/customers/a%2Fb/profile", headers=bearer(token)).status_code == 200
    assert client.get("/v1/customers/c1/profile", headers=bearer(token)).status_code == 404
    # unencoded, it is another path: not this customer's, and no server error
    assert client.get("/v1/customers/a/b/profile", headers=bearer(keys["alpha"])).status_code == 404
    assert client.get("/v1/customers/a%2Fb/profile", headers=bearer(keys["beta"])).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "as_admin"),
    [
        ("POST", "/v1/admin/tenants", b'{"tenant_id": "gamma", "name": "\\ud800"}', True),
        ("PUT", "/v1/admin/tenants/alpha/branding", b'{"display_name": "\\udfff"}', True),
        ("POST", "/v1/embed-tokens", b'{"customer_id": "\\ud800"}', False),
        ("POST", "/v1/embed-tokens", b'{"campaign_ids": ["ok", "\\udc00x"]}', False),
        ("POST", "/v1/embed-tokens", b'{"ttl_seconds": 1e400}', False),
        ("POST", "/v1/dashboard-tokens", b'{"ttl_seconds": -1e400}', False),
        ("POST", "/v1/admin/tenants", b'{"tenant_id": "\\ud800", "name": "x"}', True),
    ],
)
def test_json_a_response_cannot_carry_is_422_not_500(api, method, path, body, as_admin):
    """Lone surrogates and infinities parse in JSON, then broke SQLite, PyJWT or the 422 body itself."""
    client, keys, _ = api
    token = ADMIN_TOKEN if as_admin else keys["alpha"]
    r = client.request(
        method, path, content=body, headers={**bearer(token), "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"]

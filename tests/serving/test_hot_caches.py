"""The hot routes' caches change no answer and no refusal: a resolved credential is served from the
principal cache only while everything it was resolved from still holds (a revocation in this worker at
once, in another within the stores' ``CACHE_SECONDS``, an expiry at ``exp``), and an encoded tenant-level
answer only until the tenant's speed side changes (``api.answers``)."""

from __future__ import annotations

import math
import sqlite3

import pytest

from lambdalytics.schemas.events import to_row, validate_event
from lambdalytics.serving import principal_cache
from lambdalytics.serving.api_keys import ApiKeys
from lambdalytics.serving.auth import AuthError, Principal
from lambdalytics.serving.principal_cache import PrincipalCache, trusted_until
from lambdalytics.serving.state import ServingState

from .access_world import T0, seeded_store
from .apps import bearer, embed_token, serving_app

pytestmark = pytest.mark.unit
STATS = "/v1/campaigns/spring/stats?start=2025-12-01T00:00:00Z&end=2026-02-01T00:00:00Z"


@pytest.fixture()
def api(tmp_path):
    client, keys, state = serving_app(tmp_path, seeded_store(), ("alpha", "beta"))
    yield client, keys, state
    state.close()


def _ingest(state: ServingState, tenant: str, customer: str, event: dict) -> None:
    offset = state.speed.status().positions[("events.transaction", 0)]
    row = to_row(
        validate_event(
            {
                **event,
                "event_id": f"late-{offset}",
                "tenant_id": tenant,
                "customer_id": customer,
                "event_time": T0 + 3_600_000,
            }
        )
    )
    assert state.speed.ingest(row, "events.transaction", 0, offset, T0)


def _named_key(client, keys, scopes=("read",)) -> tuple[str, str]:
    r = client.post("/v1/keys", json={"name": "w", "scopes": list(scopes)}, headers=bearer(keys["alpha"]))
    assert r.status_code == 201, r.text
    return r.json()["api_key"], r.json()["key_id"]


def test_a_revoked_key_is_refused_on_the_next_request(api):
    client, keys, state = api
    key, key_id = _named_key(client, keys)
    token = embed_token(client, key, "c1")
    for credential in (key, token):
        for _ in range(2):  # the second one from the principal cache
            assert client.get("/v1/customers/c1/profile", headers=bearer(credential)).status_code == 200
    assert state.credentials.principals.hits >= 2
    assert client.delete(f"/v1/keys/{key_id}", headers=bearer(keys["alpha"])).status_code in (200, 204)
    assert client.get("/v1/customers/c1/profile", headers=bearer(key)).status_code == 401
    assert client.get("/v1/customers/c1/profile", headers=bearer(token)).status_code == 401


def test_a_rotated_tenant_key_is_refused_on_the_next_request(api):
    client, keys, state = api
    assert client.get(STATS, headers=bearer(keys["alpha"])).status_code == 200
    assert client.get(STATS, headers=bearer(keys["alpha"])).status_code == 200
    state.credentials.registry.rotate("alpha")
    assert client.get(STATS, headers=bearer(keys["alpha"])).status_code == 401


def test_another_worker_refuses_a_revoked_key_within_the_store_cache_time(api, monkeypatch):
    """Another worker: its own key store and principal cache over the same file. The principal entry
    lives no longer than the key store's cached answer it came from, so the bound stays CACHE_SECONDS."""
    client, keys, state = api
    key, key_id = _named_key(client, keys)
    clock = [1000.0]
    monkeypatch.setattr(principal_cache.time, "monotonic", lambda: clock[0])
    other = ApiKeys(state.settings.data_dir / "run" / "api_keys.sqlite")
    cache = PrincipalCache()

    def who() -> Principal:
        found = other.lookup(key)
        if found is None:
            raise AuthError(401, "invalid token")
        return Principal("tenant", found.tenant_id, credential=found.key_id)

    clock[0] += 0.5  # the key store's answer is half its cache time old when the principal is cached
    assert other.lookup(key) is not None
    clock[0] += ApiKeys.CACHE_SECONDS / 2
    assert cache.resolve(key, who).tenant_id == "alpha"
    assert cache.resolve(key, who).tenant_id == "alpha" and cache.hits == 1
    with sqlite3.connect(state.settings.data_dir / "run" / "api_keys.sqlite") as db:  # another process
        db.execute("UPDATE api_keys SET revoked_at = 1 WHERE key_id = ?", (key_id,))
    clock[0] += (
        ApiKeys.CACHE_SECONDS / 2 + 0.01
    )  # past the key store's entry, not a full second after caching
    with pytest.raises(AuthError):
        cache.resolve(key, who)
    other.close()


def test_a_cached_principal_ends_at_its_expiry_and_on_any_change(monkeypatch):
    wall = [2000.0]
    monkeypatch.setattr(principal_cache.time, "time", lambda: wall[0])
    cache, calls = PrincipalCache(), []

    def token_of(exp: float):
        def resolve() -> Principal:
            calls.append(exp)
            trusted_until(wall=exp)
            return Principal("embed", "alpha", "c1", credential="jti")

        return resolve

    assert cache.resolve("t", token_of(2000.5)).customer_id == "c1"
    cache.resolve("t", token_of(2000.5))
    assert len(calls) == 1
    wall[0] = 2000.5  # at exp: no longer honoured from the cache
    cache.resolve("t", token_of(math.inf))
    assert len(calls) == 2
    principal_cache.changed()  # a rotation, revocation or host-key removal in this process
    cache.resolve("t", token_of(math.inf))
    assert len(calls) == 3

    def refused() -> Principal:
        raise AuthError(401, "token expired")

    with pytest.raises(AuthError):
        cache.resolve("u", refused)
    with pytest.raises(AuthError):
        cache.resolve("u", refused)  # a refusal is never cached
    assert len(cache) == 1


def test_a_new_speed_event_changes_the_next_tenant_answers_and_unchanged_ones_hit(api):
    client, keys, state = api
    alpha, beta = bearer(keys["alpha"]), bearer(keys["beta"])
    segments = "/v1/segments?by=cohort&metric=orders&start=2025-01-01T00:00:00Z"
    routes = (STATS, "/v1/cohorts/retention", "/v1/live/orders?window=7d", segments)
    first = {path: client.get(path, headers=alpha).json() for path in routes}
    hits = state.merger.answers.hits
    for path in routes:
        again = client.get(path, headers=alpha).json()
        assert {k: v for k, v in again.items() if k != "freshness"} == {
            k: v for k, v in first[path].items() if k != "freshness"
        }
    assert state.merger.answers.hits >= hits + 3  # live orders too, unless the window moved meanwhile
    scrape = state.telemetry.scrape().decode()
    assert (
        f'lambdalytics_answer_cache_lookups_total{{result="hit"}} {float(state.merger.answers.hits)}'
        in scrape
    )
    _ingest(state, "beta", "c9", {"event_type": "ad_impression", "campaign_id": "spring", "cost": 0.01})
    hits = state.merger.answers.hits
    assert client.get(STATS, headers=alpha).json()["totals"] == first[STATS]["totals"]
    assert state.merger.answers.hits == hits + 1  # another tenant's event: still a hit
    assert client.get(STATS, headers=beta).json()["totals"]["impressions"] == 3
    _ingest(state, "alpha", "c3", {"event_type": "ad_impression", "campaign_id": "spring", "cost": 0.01})
    assert client.get(STATS, headers=alpha).json()["totals"]["impressions"] == 3
    _ingest(state, "alpha", "c3", {"event_type": "order_placed", "order_id": "c3-o", "campaign_id": "spring"})
    cohorts = client.get("/v1/cohorts/retention", headers=alpha).json()["cohorts"]
    assert cohorts != first["/v1/cohorts/retention"]["cohorts"]
    live = client.get("/v1/live/orders?window=7d", headers=alpha).json()
    assert live != first["/v1/live/orders?window=7d"] and live["window_seconds"] == 7 * 86400
    assert client.get(segments, headers=alpha).json()["segments"] != first[segments]["segments"]


def test_a_campaign_range_answers_the_same_anywhere_within_its_hours(api):
    client, keys, _ = api
    alpha = bearer(keys["alpha"])
    base = "/v1/campaigns/spring/stats?granularity=hour"
    whole = client.get(f"{base}&start=2025-12-31T23:00:00Z&end=2026-01-01T01:00:00Z", headers=alpha).json()
    moved = client.get(
        f"{base}&start=2025-12-31T22:00:00.001Z&end=2026-01-01T00:00:00.001Z", headers=alpha
    ).json()
    assert whole["points"] == moved["points"] and whole["totals"] == moved["totals"]
    assert whole["totals"]["impressions"] == 2
    empty = client.get(f"{base}&start=2026-01-01T00:00:00.001Z&end=2026-01-01T01:00:00Z", headers=alpha)
    assert empty.json()["totals"]["impressions"] == 0 and empty.json()["points"] == []

"""Users, sessions, scoped keys and the audit log through the real app (TestClient): what the issue asks
each of them to do, including the timeouts and the sign-in limits."""

from __future__ import annotations

import stat

import pytest

from lambdalytics.serving.api.sign_in import SIGN_IN_ACCOUNT_BURST, SIGN_IN_ADDRESS_BURST
from lambdalytics.serving.rate_limit import RateLimiter
from lambdalytics.serving.users import Users

from .access_world import ADMIN, bearer
from .accounts import FORM, PASSWORD, form_csrf, session_csrf, sign_in

pytestmark = pytest.mark.unit


def test_the_operator_creates_a_tenants_first_owner_and_the_owner_invites_a_viewer(world):
    client = world.client
    r = client.post(
        "/v1/admin/tenants/beta/users",
        json={"email": "Boss@Beta.example", "role": "owner", "password": PASSWORD},
        headers=ADMIN,
    )
    assert (
        r.status_code == 201 and r.json()["email"] == "boss@beta.example" and "invite_token" not in r.json()
    )
    assert (
        client.post(
            "/v1/admin/tenants/nobody/users", json={"email": "x@y.example", "role": "owner"}, headers=ADMIN
        ).status_code
        == 404
    )
    owner = world.browser()
    assert sign_in(owner, "boss@beta.example").status_code == 303
    csrf = session_csrf(owner)
    invited = owner.post(
        "/v1/users", json={"email": "v@beta.example", "role": "viewer"}, headers={"X-CSRF-Token": csrf}
    )
    assert invited.status_code == 201 and invited.json()["active"] is False
    invite = invited.json()["invite_token"]
    viewer = world.browser()
    assert sign_in(viewer, "v@beta.example", password="").headers["location"] == "/dashboard?login=failed"
    assert client.post("/v1/invites/accept", json={"invite": invite, "password": "short"}).status_code == 422
    accepted = client.post("/v1/invites/accept", json={"invite": invite, "password": PASSWORD})
    assert accepted.status_code == 200 and accepted.json()["active"] is True
    assert client.post("/v1/invites/accept", json={"invite": invite, "password": PASSWORD}).status_code == 404
    assert sign_in(viewer, "v@beta.example").status_code == 303
    assert viewer.get("/v1/session").json()["role"] == "viewer"
    listed = owner.get("/v1/users").json()["users"]
    assert sorted(u["email"] for u in listed) == ["boss@beta.example", "v@beta.example"]
    assert not [u for u in listed if "password" in str(u) or "hash" in str(u)]
    duplicate = owner.post(
        "/v1/users",
        json={"email": "v@beta.example", "role": "analyst", "password": PASSWORD},
        headers={"X-CSRF-Token": csrf},
    )
    assert duplicate.status_code == 409


def test_passwords_are_argon2id_hashes_in_a_private_file(world, tmp_path):
    run = tmp_path / "run"
    assert stat.S_IMODE((run / "accounts.sqlite").stat().st_mode) == 0o600
    raw = (run / "accounts.sqlite").read_bytes()
    assert b"$argon2id$" in raw and PASSWORD.encode() not in raw
    users = world.state.credentials.users
    assert users.authenticate("owner@alpha.example", PASSWORD).role == "owner"
    assert users.authenticate("owner@alpha.example", PASSWORD + "x") is None
    assert users.authenticate("nobody@alpha.example", PASSWORD) is None


def test_a_tenant_keeps_an_owner_and_role_changes_apply_to_the_next_request(world):
    owner = world.users["owner"]
    csrf = session_csrf(owner)
    me = owner.get("/v1/session").json()["user_id"]
    demote = owner.patch(f"/v1/users/{me}", json={"role": "viewer"}, headers={"X-CSRF-Token": csrf})
    assert demote.status_code == 409 and "owner" in demote.json()["detail"]
    assert owner.delete(f"/v1/users/{me}", headers={"X-CSRF-Token": csrf}).status_code == 409
    analyst = world.users["analyst"]
    analyst_id = analyst.get("/v1/session").json()["user_id"]
    assert (
        analyst.post(
            "/v1/embed-tokens", json={"customer_id": "c1"}, headers={"X-CSRF-Token": session_csrf(analyst)}
        ).status_code
        == 201
    )
    r = owner.patch(f"/v1/users/{analyst_id}", json={"role": "viewer"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    assert (
        analyst.post(
            "/v1/embed-tokens", json={"customer_id": "c1"}, headers={"X-CSRF-Token": session_csrf(analyst)}
        ).status_code
        == 403
    )
    assert owner.delete(f"/v1/users/{analyst_id}", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert analyst.get("/v1/session").status_code == 401  # removal ended the session at once
    assert analyst.get("/v1/customers/c1/profile").status_code == 401


def test_sign_out_revokes_the_session_at_once_even_a_copied_cookie(world):
    browser = world.user("alpha", "out@alpha.example", "viewer")
    stolen = world.browser()
    stolen.cookies.set("ll_session", browser.cookies.get("ll_session"))
    assert stolen.get("/v1/customers/c1/profile").status_code == 200
    csrf = form_csrf(browser)  # the dashboard's sign-out form carries the session's token
    assert csrf == session_csrf(browser)
    r = browser.post("/dashboard/logout", content=f"csrf={csrf}", headers=FORM)
    assert r.status_code == 303 and "login=signed-out" in r.headers["location"]
    assert "ll_session=" in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    assert stolen.get("/v1/customers/c1/profile").status_code == 401


def test_sessions_end_when_idle_and_at_their_absolute_timeout(world):
    sessions = world.state.credentials.sessions
    now = [1_000_000.0]
    sessions.clock = lambda: now[0]
    browser = world.user("alpha", "clock@alpha.example", "viewer")
    assert browser.get("/v1/live/orders").status_code == 200
    now[0] += sessions.idle_seconds - 60
    assert browser.get("/v1/live/orders").status_code == 200  # activity keeps it alive
    now[0] += sessions.idle_seconds + 1
    assert browser.get("/v1/live/orders").status_code == 401  # idle too long
    active = world.user("alpha", "busy@alpha.example", "viewer")
    start = now[0]
    while now[0] - start < sessions.absolute_seconds - 600:
        now[0] += 600
        assert active.get("/v1/live/orders").status_code == 200
    now[0] = start + sessions.absolute_seconds + 1
    assert active.get("/v1/live/orders").status_code == 401  # however active, never past the absolute end


def test_sign_in_attempts_are_limited_per_account_and_per_address(world):
    app = world.client.app
    # each attempt costs an argon2 verify: buckets that barely refill keep the counts exact
    app.state.sign_in_accounts = RateLimiter(1e-6, SIGN_IN_ACCOUNT_BURST)
    app.state.sign_in_addresses = RateLimiter(1e-6, SIGN_IN_ADDRESS_BURST)
    world.state.credentials.users.create("alpha", "target@alpha.example", "viewer", PASSWORD)
    attackers = [world.browser(f"198.51.100.{i}") for i in range(SIGN_IN_ACCOUNT_BURST + 1)]
    codes = [sign_in(a, "target@alpha.example", password="wrong guess 123").status_code for a in attackers]
    assert codes == [303] * SIGN_IN_ACCOUNT_BURST + [429]  # failures per account, from any addresses
    assert sign_in(world.browser("198.51.100.99"), "target@alpha.example").status_code == 429  # even right
    assert sign_in(world.browser("198.51.100.98"), "viewer@alpha.example").status_code == 303  # others: no
    # every attempt counts per address, successful ones too (each a new browser on the same address)
    codes = [
        sign_in(world.browser("203.0.113.77"), "analyst@alpha.example").status_code
        for _ in range(SIGN_IN_ADDRESS_BURST + 1)
    ]
    assert codes == [303] * SIGN_IN_ADDRESS_BURST + [429]


def test_named_keys_have_scopes_are_listed_without_secrets_and_revoke(world):
    client, owner_key = world.client, world.keys["alpha"]
    r = client.post(
        "/v1/keys", json={"name": "shop backend", "scopes": ["ingest"]}, headers=bearer(owner_key)
    )
    assert r.status_code == 201
    key, key_id = r.json()["api_key"], r.json()["key_id"]
    event = {
        "event_type": "page_view",
        "event_id": "e1",
        "customer_id": "c1",
        "event_time": "2026-01-01T00:00:00Z",
    }
    assert client.post("/v1/events", json=event, headers=bearer(world.scoped["read"])).status_code == 403
    assert client.post("/v1/events", json=event, headers=bearer(key)).status_code not in (401, 403)
    assert client.get("/v1/customers/c1/profile", headers=bearer(key)).status_code == 403
    for not_admin in (key, world.scoped["read"]):
        assert (
            client.post(
                "/v1/keys", json={"name": "x", "scopes": ["admin"]}, headers=bearer(not_admin)
            ).status_code
            == 403
        )
        assert (
            client.post(
                "/v1/users", json={"email": "e@x.example", "role": "owner"}, headers=bearer(not_admin)
            ).status_code
            == 403
        )
    listed = client.get("/v1/keys", headers=bearer(world.scoped["admin"])).json()["keys"]
    mine = next(k for k in listed if k["key_id"] == key_id)
    assert (
        mine["name"] == "shop backend" and mine["scopes"] == ["ingest"] and mine["last_used_at"] is not None
    )
    assert set(mine) == {"key_id", "name", "scopes", "created_at", "last_used_at", "revoked_at"}
    assert not [k for k in listed if any(s in str(k) for s in (key, owner_key, *world.scoped.values()))]
    reader = client.post("/v1/embed-tokens", json={"customer_id": "c1"}, headers=bearer(world.scoped["read"]))
    token = reader.json()["token"]
    assert client.get("/v1/customers/c1/profile", headers=bearer(token)).status_code == 200
    read_id = next(k["key_id"] for k in listed if k["name"] == "read only")
    assert client.delete(f"/v1/keys/{read_id}", headers=bearer(owner_key)).status_code == 204
    assert client.get("/v1/customers/c1/profile", headers=bearer(world.scoped["read"])).status_code == 401
    assert client.get("/v1/customers/c1/profile", headers=bearer(token)).status_code == 401  # what it minted
    assert client.delete(f"/v1/keys/{read_id}", headers=bearer(owner_key)).status_code == 404
    assert (
        client.delete(f"/v1/keys/{key_id}", headers=bearer(world.keys["beta"])).status_code == 404
    )  # not beta's
    assert client.get("/v1/customers/c1/profile", headers=bearer(owner_key)).status_code == 200  # migration


def test_the_audit_log_records_who_what_when_where_and_pages(world):
    client, owner = world.client, world.users["owner"]
    csrf = session_csrf(owner)
    sign_in(world.browser("192.0.2.5"), "owner@alpha.example", password="wrong password here")
    owner.put("/v1/branding", json={"primary_color": "#123456"}, headers={"X-CSRF-Token": csrf})
    client.post("/v1/admin/batch-runs", headers=ADMIN)  # refused (409 in these tests): not recorded
    world.state.runs.trigger = lambda: "run-1"
    assert client.post("/v1/admin/batch-runs", headers=ADMIN).status_code == 202
    entries, after = [], 0
    while True:
        page = owner.get(f"/v1/audit?after={after}&limit=3").json()
        entries += page["entries"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    actions = [e["action"] for e in entries]
    assert actions.count("key_created") == 3 and actions.count("sign_in") == 3 and "host_key_added" in actions
    failed = next(e for e in entries if e["action"] == "sign_in_failed")
    assert failed["address"] == "192.0.2.5" and failed["target"] == "owner@alpha.example"
    branding = next(e for e in entries if e["action"] == "branding_changed")
    assert (
        branding["actor"] == "user owner@alpha.example"
        and branding["detail"]["branding"]["primary_color"] == "#123456"
    )
    assert all(e["tenant_id"] == "alpha" for e in entries)
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    assert "batch_run_triggered" not in actions  # about no tenant: the operator's
    operator = client.get("/v1/audit?limit=500", headers=ADMIN).json()["entries"]
    assert [e["target"] for e in operator if e["action"] == "batch_run_triggered"] == ["run-1"]
    assert {e["tenant_id"] for e in operator} >= {"alpha", "beta"}
    beta = client.get("/v1/audit", headers=bearer(world.keys["beta"])).json()["entries"]
    assert beta and all(e["tenant_id"] == "beta" for e in beta)


def test_the_audit_log_cannot_be_edited(world, tmp_path):
    client, owner = world.client, world.users["owner"]
    csrf = session_csrf(owner)
    for method in ("put", "patch", "delete", "post"):
        r = getattr(client, method)("/v1/audit", headers=bearer(world.keys["alpha"]))
        assert r.status_code == 405
        assert getattr(owner, method)("/v1/audit", headers={"X-CSRF-Token": csrf}).status_code == 405
    import sqlite3

    db = sqlite3.connect(tmp_path / "run" / "audit.sqlite")
    for sql in ("UPDATE audit SET actor = 'someone else'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(sql)
    db.close()


def test_a_user_store_rehashes_a_password_hashed_with_older_parameters(tmp_path):
    from argon2 import PasswordHasher

    old = Users(
        tmp_path / "a.sqlite", hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    )
    old.create("t", "a@t.example", "owner", PASSWORD)
    old.close()
    new = Users(tmp_path / "a.sqlite")
    assert new.authenticate("a@t.example", PASSWORD) is not None
    stored = new._db.execute("SELECT password_hash FROM users").fetchone()[0]
    assert "m=19456,t=2,p=1" in stored
    new.close()

"""Page routes without a browser: headers, the login exchange, token handling, the missing-build answer,
and the branding admin API."""

from __future__ import annotations

import json
import re
import time

import pytest
from fastapi.testclient import TestClient

from lambdalytics.infra.settings import Settings
from lambdalytics.schemas.catalog import CATALOG
from lambdalytics.serving.api.routes import web
from lambdalytics.serving.main import create_app
from lambdalytics.serving.state import ServingState
from lambdalytics.speed.embedded import EmbeddedSpeedStore

from ..serving.accounts import FORM, PASSWORD, form_csrf, sign_in
from ..serving.strong_secrets import ADMIN_TOKEN, TOKEN_SECRET

pytestmark = pytest.mark.unit
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def app(tmp_path, monkeypatch):
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "app.js").write_text("console.log('app')")
    (dist / "app.css").write_text("body{}")
    (dist / "widget.js").write_text("(()=>{})()")
    monkeypatch.setattr(web, "DIST", dist)
    settings = Settings(data_dir=tmp_path / "data", admin_token=ADMIN_TOKEN, token_secret=TOKEN_SECRET)
    state = ServingState(settings, EmbeddedSpeedStore(block_size=10))
    client = TestClient(create_app(state), follow_redirects=False)
    key = state.credentials.registry.create("acme", "Acme")
    state.credentials.users.create("acme", "owner@acme.example", "owner", PASSWORD)
    yield client, state, key, dist
    state.close()


def config_of(html: str) -> dict:
    return json.loads(
        re.search(r'<script type="application/json" id="ll-config">(.*?)</script>', html).group(1)
    )


def test_missing_build_answers_503_with_the_fix(app):
    client, state, key, dist = app
    for f in dist.iterdir():
        f.unlink()
    for path in ("/dashboard", "/embed/live-badge?token=x", "/embed/widget.js", "/assets/app.js"):
        r = client.get(path)
        assert r.status_code == 503 and "make web" in r.text


def test_sign_in_with_email_and_password_opens_a_session_and_the_key_is_refused(app):
    client, state, key, _ = app
    page = client.get("/dashboard")
    assert config_of(page.text)["session"] is None and 'name="password"' in page.text
    assert 'name="key"' not in page.text  # no field for a tenant key any more
    r = sign_in(client, "owner@acme.example")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard?tenant=acme"
    assert "#token" not in r.headers["location"] and key not in r.text
    signed_in = config_of(client.get("/dashboard").text)["session"]
    assert signed_in["email"] == "owner@acme.example" and signed_in["role"] == "owner"
    assert client.get("/v1/branding").json()["tenant_id"] == "acme"  # the cookie reads the API
    fresh = TestClient(client.app, follow_redirects=False)
    refused = sign_in(fresh, "owner@acme.example", password="", key=key)  # the key in the old field
    assert refused.headers["location"] == "/dashboard?login=failed" and "ll_session" not in refused.cookies
    wrong = sign_in(fresh, "owner@acme.example", password="not the password at all")
    assert wrong.headers["location"] == "/dashboard?login=failed"
    assert "not accepted" in fresh.get("/dashboard?login=failed").text
    csrf = form_csrf(fresh)
    cross = fresh.post(
        "/dashboard/login",
        content=f"csrf={csrf}&email=owner@acme.example&password={PASSWORD}",
        headers={**FORM, "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403


def test_embed_pages_classify_tokens_and_never_echo_them(app):
    client, state, key, _ = app
    ok, _ = state.credentials.signer.issue("acme", "c1", 600, campaigns=("k1",), cohorts=True)
    expired, _ = state.credentials.signer.issue("acme", "c1", 60, now=time.time() - 3600)
    dash, _ = state.credentials.signer.issue_dashboard("acme", 600)
    cases = {ok: "ok", expired: "expired", dash: "invalid", key: "invalid", "x.y.z": "invalid", "": "missing"}
    for token, expected in cases.items():
        r = client.get(f"/embed/customer-card?token={token}")
        assert r.status_code == 200
        cfg = config_of(r.text)
        assert cfg["token_state"] == expected, token
        if token:
            assert token not in r.text
    cfg = config_of(client.get(f"/embed/customer-card?token={ok}").text)
    assert cfg["scope"] == {"customer_id": "c1", "campaigns": ["k1"], "cohorts": True}
    assert cfg["tenant"]["display_name"] == "acme"
    assert cfg["catalog"] == CATALOG.describe()  # the page's dictionary is GET /v1/metrics, hints included
    assert {m["name"] for m in cfg["catalog"] if m["series"]} >= {"revenue", "orders"}
    assert client.get(f"/embed/nope?token={ok}").status_code == 404


def test_an_embed_page_with_a_token_of_a_rotated_key_says_invalid(app):
    client, state, key, _ = app
    minted = client.post(
        "/v1/embed-tokens", json={"customer_id": "c1"}, headers={"Authorization": f"Bearer {key}"}
    ).json()["token"]
    assert config_of(client.get(f"/embed/customer-card?token={minted}").text)["token_state"] == "ok"
    state.credentials.registry.rotate("acme")
    assert config_of(client.get(f"/embed/customer-card?token={minted}").text)["token_state"] == "invalid"
    expired, _ = state.credentials.signer.issue("acme", "c1", 60, now=time.time() - 3600)  # generation 1
    assert config_of(client.get(f"/embed/customer-card?token={expired}").text)["token_state"] == "invalid"


def test_the_theme_style_carries_the_csp_nonce_and_config_cannot_break_out(app):
    client, state, _, _ = app
    refused = client.put(
        "/v1/admin/tenants/acme/branding", json={"display_name": "</script><b>"}, headers=ADMIN
    )
    assert refused.status_code == 422
    r = client.put(
        "/v1/admin/tenants/acme/branding",
        json={"display_name": "Acme & Sons", "primary_color": "#e8590c"},
        headers=ADMIN,
    )
    assert r.status_code == 200
    token, _ = state.credentials.signer.issue("acme", "c1", 600)
    page = client.get(f"/embed/live-badge?token={token}")
    nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"]).group(1)
    assert f'<style nonce="{nonce}">:root{{--ll-brand:#e8590c;' in page.text
    assert "Acme \\u0026 Sons" in page.text  # JSON in the data block is escaped for HTML
    again = client.get(f"/embed/live-badge?token={token}")
    assert re.search(r"'nonce-([^']+)'", again.headers["content-security-policy"]).group(1) != nonce
    assert 'integrity="sha384-' in page.text


def test_branding_admin_api(app):
    client, state, key, _ = app
    assert client.get("/v1/admin/tenants/acme/branding", headers=ADMIN).json()["primary_color"] == "#3b5bdb"
    body = {"primary_color": "#123456", "frame_ancestors": ["https://shop.example.com"], "currency": "EUR"}
    assert client.put("/v1/admin/tenants/acme/branding", json=body, headers=ADMIN).status_code == 200
    assert client.get("/v1/admin/tenants/acme/branding", headers=ADMIN).json()["frame_ancestors"] == [
        "https://shop.example.com"
    ]
    bad = client.put("/v1/admin/tenants/acme/branding", json={"primary_color": "red"}, headers=ADMIN)
    assert bad.status_code == 422
    tenant = {"Authorization": f"Bearer {key}"}
    assert client.put("/v1/admin/tenants/acme/branding", json=body, headers=tenant).status_code == 403
    mine = client.get("/v1/branding", headers=tenant).json()
    assert mine["primary_color"] == "#123456" and "frame_ancestors" not in mine
    assert mine["theme"]["--ll-brand"] == "#123456"
    assert client.get("/v1/branding").status_code == 401


def test_sign_in_ignores_extra_form_fields_and_refuses_huge_bodies(app):
    """A form with more fields (a password manager's, an extension's) signs in, never 500s."""
    client, state, key, _ = app
    extra = {f"f{i}": "x" for i in range(10)}
    r = sign_in(client, "owner@acme.example", remember="on", **extra)
    assert r.status_code == 303 and "ll_session" in r.cookies
    fresh = TestClient(client.app, follow_redirects=False)
    csrf = form_csrf(fresh)
    repeated = fresh.post(
        "/dashboard/login",
        content=f"csrf={csrf}&email=owner@acme.example&password={PASSWORD}&password=other",
        headers=FORM,
    )
    assert repeated.status_code == 303 and "ll_session" in repeated.cookies  # the first value counts
    huge = fresh.post(
        "/dashboard/login", content=f"csrf={csrf}&password={PASSWORD}&pad=" + "x" * 5000, headers=FORM
    )
    assert huge.status_code == 413 and huge.headers["Cache-Control"] == "no-store"
    assert PASSWORD not in huge.text


def test_an_invited_user_sets_a_password_with_the_invite_form(app):
    client, state, key, _ = app
    user, invite = state.credentials.users.create("acme", "new@acme.example", "viewer")
    browser = TestClient(client.app, follow_redirects=False)
    csrf = form_csrf(browser, "/dashboard/invite")
    no_csrf = browser.post("/dashboard/invite", content=f"invite={invite}&password={PASSWORD}", headers=FORM)
    assert no_csrf.status_code == 403
    wrong = browser.post(
        "/dashboard/invite", content=f"csrf={csrf}&invite=lli_nope&password={PASSWORD}", headers=FORM
    )
    assert wrong.headers["location"] == "/dashboard/invite?invite=unknown"
    assert "unknown, used or expired" in browser.get("/dashboard/invite?invite=unknown").text
    weak = browser.post(
        "/dashboard/invite", content=f"csrf={csrf}&invite={invite}&password=short", headers=FORM
    )
    assert weak.headers["location"] == "/dashboard/invite?invite=weak"
    ok = browser.post(
        "/dashboard/invite", content=f"csrf={csrf}&invite={invite}&password={PASSWORD}", headers=FORM
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard?tenant=acme&login=invited"
    assert invite not in ok.text and invite not in str(ok.headers)
    assert sign_in(browser, "new@acme.example").status_code == 303
    assert browser.get("/v1/session").json()["role"] == "viewer"
    used = TestClient(client.app, follow_redirects=False)
    csrf = form_csrf(used, "/dashboard/invite")
    again = used.post(
        "/dashboard/invite", content=f"csrf={csrf}&invite={invite}&password={PASSWORD}", headers=FORM
    )
    assert again.headers["location"] == "/dashboard/invite?invite=unknown"  # single use

"""The cross-tenant attack suite, access management part (with test_api_security.py): role escalation,
CSRF, session fixation, cookie flags and host-signed token attacks, all refused."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from .access_world import ADMIN, bearer
from .accounts import FORM, PASSWORD, form_csrf, session_csrf, sign_in

pytestmark = pytest.mark.unit


# ------------------------------------------------------------------ role escalation


def test_no_role_or_scope_can_raise_itself(world):
    client = world.client
    viewer, analyst, owner = world.users["viewer"], world.users["analyst"], world.users["owner"]
    for browser in (viewer, analyst):
        csrf = session_csrf(browser)
        me = browser.get("/v1/session").json()["user_id"]
        headers = {"X-CSRF-Token": csrf}
        assert browser.patch(f"/v1/users/{me}", json={"role": "owner"}, headers=headers).status_code == 403
        assert (
            browser.post(
                "/v1/users",
                json={"email": "sock@alpha.example", "role": "owner", "password": PASSWORD},
                headers=headers,
            ).status_code
            == 403
        )
        assert (
            browser.post("/v1/keys", json={"name": "k", "scopes": ["admin"]}, headers=headers).status_code
            == 403
        )
        assert browser.put("/v1/branding", json={}, headers=headers).status_code == 403
        assert browser.get("/v1/audit").status_code == 403
        assert (
            browser.post(
                "/v1/admin/tenants", json={"tenant_id": "mine", "name": "m"}, headers=headers
            ).status_code
            == 403
        )
        assert browser.get("/v1/session").json()["role"] in ("viewer", "analyst")  # unchanged
    assert (
        viewer.post(
            "/v1/embed-tokens", json={"customer_id": "c1"}, headers={"X-CSRF-Token": session_csrf(viewer)}
        ).status_code
        == 403
    )  # a viewer only views
    for scope in ("read", "ingest"):
        key = world.scoped[scope]
        assert (
            client.post("/v1/keys", json={"name": "k", "scopes": ["admin"]}, headers=bearer(key)).status_code
            == 403
        )
        assert (
            client.post(
                "/v1/users", json={"email": "k@alpha.example", "role": "owner"}, headers=bearer(key)
            ).status_code
            == 403
        )
    embed, _ = world.state.credentials.signer.issue("alpha", "c1", 600)
    for token in (embed, world.host_token({"c": "c1"})):
        assert client.post("/v1/embed-tokens", json={}, headers=bearer(token)).status_code == 403
        assert (
            client.post("/v1/keys", json={"name": "k", "scopes": ["read"]}, headers=bearer(token)).status_code
            == 403
        )
    # an owner is an owner of its own tenant only: beta's users and keys are 404, and the tenant is never
    # taken from the request
    beta_owner = world.user("beta", "owner@beta.example", "owner")
    beta_id = beta_owner.get("/v1/session").json()["user_id"]
    headers = {"X-CSRF-Token": session_csrf(owner)}
    assert owner.patch(f"/v1/users/{beta_id}", json={"role": "viewer"}, headers=headers).status_code == 404
    assert owner.delete(f"/v1/users/{beta_id}", headers=headers).status_code == 404
    beta_key = client.post(
        "/v1/keys", json={"name": "b", "scopes": ["read"]}, headers=bearer(world.keys["beta"])
    )
    beta_key_id = beta_key.json()["key_id"]
    assert owner.delete(f"/v1/keys/{beta_key_id}", headers=headers).status_code == 404
    assert client.delete(f"/v1/keys/{beta_key_id}", headers=bearer(world.scoped["admin"])).status_code == 404
    assert (
        client.get("/v1/customers/c1/profile", headers=bearer(beta_key.json()["api_key"])).json()["tenant_id"]
        == "beta"
    )
    created = owner.post(
        "/v1/users",
        json={"email": "new@alpha.example", "role": "viewer", "password": PASSWORD, "tenant_id": "beta"},
        headers=headers,
    )
    assert created.status_code == 422  # unknown fields are refused, never used
    listed = owner.get("/v1/users", headers={"X-Tenant": "beta"}).json()["users"]
    assert {u["email"] for u in listed} == {
        "owner@alpha.example",
        "analyst@alpha.example",
        "viewer@alpha.example",
    }


# ------------------------------------------------------------------ CSRF


def test_state_changes_with_the_session_cookie_need_its_csrf_token(world):
    owner, analyst = world.users["owner"], world.users["analyst"]
    body = {"email": "csrf@alpha.example", "role": "owner", "password": PASSWORD}
    assert owner.post("/v1/users", json=body).status_code == 403  # no token: a forged cross-site request
    assert owner.post("/v1/users", json=body, headers={"X-CSRF-Token": "guess"}).status_code == 403
    other = session_csrf(analyst)  # another session's token is not this session's
    assert owner.post("/v1/users", json=body, headers={"X-CSRF-Token": other}).status_code == 403
    assert world.state.credentials.users.by_email("csrf@alpha.example") is None
    assert (
        owner.post("/v1/users", json=body, headers={"X-CSRF-Token": session_csrf(owner)}).status_code == 201
    )
    assert owner.get("/v1/users").status_code == 200  # reads need no token


def test_the_sign_in_and_sign_out_forms_need_their_csrf_tokens(world):
    browser = world.browser()
    form_csrf(browser)  # the login CSRF cookie is set
    no_token = browser.post(
        "/dashboard/login", content=f"email=owner@alpha.example&password={PASSWORD}", headers=FORM
    )
    assert no_token.status_code == 403 and "ll_session" not in no_token.cookies
    foreign = world.browser()  # a token from another browser's form (an attacker's page) does not match
    stolen = form_csrf(foreign)
    r = browser.post(
        "/dashboard/login",
        content=f"csrf={stolen}&email=owner@alpha.example&password={PASSWORD}",
        headers=FORM,
    )
    assert r.status_code in (303, 403)
    if r.status_code == 303:  # only if both browsers hold the same cookie value, which they do not
        pytest.fail("a sign-in form token of another browser was accepted")
    owner = world.users["owner"]
    forged = owner.post("/dashboard/logout", content="csrf=guess", headers=FORM)
    assert forged.status_code == 403
    assert owner.get("/v1/session").status_code == 200  # still signed in: a forged sign-out did nothing
    cross = owner.post(
        "/dashboard/logout",
        content=f"csrf={form_csrf(owner)}",
        headers={**FORM, "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403 and owner.get("/v1/session").status_code == 200


# ------------------------------------------------------------------ session fixation


def test_sign_in_rotates_the_session_so_a_planted_one_is_never_signed_in(world):
    attacker = world.user("alpha", "attacker@alpha.example", "viewer")
    planted = attacker.cookies.get("ll_session")
    victim = world.browser()
    csrf = form_csrf(victim)  # the victim opens the sign-in page
    victim.cookies.set("ll_session", planted)  # the attacker fixes the victim's session id
    r = victim.post(  # ... and the victim, an owner, signs in
        "/dashboard/login", content=f"csrf={csrf}&email=owner@alpha.example&password={PASSWORD}", headers=FORM
    )
    assert r.status_code == 303
    fresh = r.cookies.get("ll_session")
    assert fresh and fresh != planted
    assert attacker.get("/v1/session").status_code == 401  # the planted session ended with the sign-in
    assert attacker.get("/v1/users").status_code == 401  # and never became the owner's
    victim.cookies.set("ll_session", fresh)
    assert victim.get("/v1/session").json()["email"] == "owner@alpha.example"
    invented = world.browser()
    invented.cookies.set("ll_session", "chosen-by-the-attacker-0123456789")
    assert invented.get("/v1/session").status_code == 401  # an id nobody issued is nobody's session
    assert (
        sign_in(invented, "viewer@alpha.example").cookies.get("ll_session")
        != "chosen-by-the-attacker-0123456789"
    )


# ------------------------------------------------------------------ cookie flags


def _set_cookie(response, name: str) -> str:
    found = [v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(name + "=")]
    assert len(found) == 1, response.headers
    return found[0].lower()


def test_cookie_flags(world):
    r = sign_in(world.browser(), "owner@alpha.example")
    cookie = _set_cookie(r, "ll_session")
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http (loopback here): a Secure cookie would never come back
    max_age = int(cookie.split("max-age=")[1].split(";")[0])
    assert 0 < max_age <= world.state.credentials.sessions.absolute_seconds
    login = _set_cookie(world.browser().get("/dashboard"), "ll_login_csrf")
    assert "httponly" in login and "samesite=strict" in login and "path=/dashboard" in login
    tls = TestClient(world.client.app, base_url="https://testserver", follow_redirects=False)
    secure = _set_cookie(sign_in(tls, "viewer@alpha.example"), "ll_session")
    assert "secure" in secure and "httponly" in secure and "samesite=strict" in secure
    assert "secure" in _set_cookie(
        TestClient(world.client.app, base_url="https://testserver").get("/dashboard"), "ll_login_csrf"
    )
    page = world.users["owner"].get("/dashboard")
    session_id = world.users["owner"].cookies.get("ll_session")
    assert session_id not in page.text  # the page carries the CSRF token, never the session id


# ------------------------------------------------------------------ host-signed embed tokens


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_host_signed_token_reads_what_its_claims_say_without_calling_our_api(world):
    client = world.client
    token = world.host_token({"c": "c1", "cp": ["spring"]})
    profile = client.get("/v1/customers/c1/profile", headers=bearer(token))
    assert profile.status_code == 200 and profile.json()["tenant_id"] == "alpha"
    assert client.get("/v1/customers/c2/profile", headers=bearer(token)).status_code == 404
    assert client.get("/v1/campaigns/spring/stats", headers=bearer(token)).status_code == 200
    assert client.get("/v1/cohorts/retention", headers=bearer(token)).status_code == 403  # no "co" claim
    page = client.get(f"/embed/customer-card?token={token}")
    assert '"token_state":"ok"' in page.text and token not in page.text
    expired = world.host_token({"c": "c1", "exp": int(time.time()) - 10})
    assert '"token_state":"expired"' in client.get(f"/embed/customer-card?token={expired}").text  # says so


def test_host_keys_rotate_by_kid(world):
    client, owner_key = world.client, bearer(world.keys["alpha"])
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    r = client.post(
        "/v1/host-keys", json={"kid": "host-2", "public_key_pem": pem.decode()}, headers=owner_key
    )
    assert r.status_code == 201 and r.json()["keys"][0]["alg"] == "RS256"
    old = world.host_token({"c": "c1"})
    new = world.host_token({"c": "c1"}, kid="host-2", key=rsa_key, alg="RS256")
    assert client.get("/v1/customers/c1/profile", headers=bearer(new)).status_code == 200
    assert client.get("/v1/customers/c1/profile", headers=bearer(old)).status_code == 200  # both, meanwhile
    assert {k["kid"] for k in client.get("/v1/host-keys", headers=owner_key).json()["keys"]} == {
        "host-1",
        "host-2",
    }
    assert client.delete("/v1/host-keys/host-1", headers=owner_key).status_code == 204
    assert client.get("/v1/customers/c1/profile", headers=bearer(old)).status_code == 401
    assert client.get("/v1/customers/c1/profile", headers=bearer(new)).status_code == 200
    again = client.post(
        "/v1/host-keys", json={"kid": "host-2", "public_key_pem": pem.decode()}, headers=owner_key
    )
    assert again.status_code == 409  # new material never goes under an old kid


def test_host_token_attacks_are_refused(world):
    client = world.client
    public_pem = world.host_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    exp = int(time.time()) + 600
    claims = {"t": "alpha", "c": "c1", "exp": exp}
    # alg=none, with and without the registered kid
    none_token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'host-1'})}.{_b64(claims)}."
    # HS256 "signed" with the public key as the HMAC secret (algorithm confusion)
    import hashlib
    import hmac as hmac_

    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "host-1"})
    body = _b64(claims)
    mac = hmac_.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    confused = f"{header}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    # a key the tenant never registered, a missing kid, an unknown kid
    stranger = ec.generate_private_key(ec.SECP256R1())
    unregistered = jwt.encode(claims, stranger, "ES256", headers={"kid": "host-1"})
    no_kid = jwt.encode(claims, world.host_key, "ES256")
    unknown_kid = world.host_token({"c": "c1"}, kid="host-9")
    # beta registers its own key under the same kid: a token naming alpha signed by beta's key fails,
    # and a token naming beta signed by alpha's key fails
    beta_key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(beta_key.public_key(), as_dict=True)
    assert (
        client.post(
            "/v1/host-keys", json={**jwk, "kid": "host-1"}, headers=bearer(world.keys["beta"])
        ).status_code
        == 201
    )
    betas_key_for_alpha = jwt.encode(claims, beta_key, "ES256", headers={"kid": "host-1"})
    alphas_key_for_beta = jwt.encode(
        {**claims, "t": "beta"}, world.host_key, "ES256", headers={"kid": "host-1"}
    )
    # the right key but a lying header, an expired token, a token living too long, a token of a removed tenant
    rs_header = jwt.encode(claims, world.host_key, "ES256", headers={"kid": "host-1"})
    parts = rs_header.split(".")
    lying = f"{_b64({'alg': 'RS256', 'typ': 'JWT', 'kid': 'host-1'})}.{parts[1]}.{parts[2]}"
    expired = world.host_token({"c": "c1", "exp": int(time.time()) - 10})
    forever = world.host_token({"c": "c1", "exp": int(time.time()) + 30 * 86400})
    ghost = world.host_token({"t": "ghost", "c": "c1"})
    attacks = {
        "alg=none": none_token,
        "HS256 with the public key": confused,
        "unregistered key": unregistered,
        "missing kid": no_kid,
        "unknown kid": unknown_kid,
        "beta's key for alpha": betas_key_for_alpha,
        "alpha's key for beta": alphas_key_for_beta,
        "RS256 header on an ES256 key": lying,
        "expired": expired,
        "lives longer than a day": forever,
        "unknown tenant": ghost,
    }
    for i, (name, token) in enumerate(attacks.items()):
        attacker = world.browser(f"192.0.2.{i}")  # one address each: no failed-authentication limit reached
        for path in ("/v1/customers/c1/profile", "/v1/live/orders"):
            r = attacker.get(path, headers=bearer(token))
            assert r.status_code == 401, (name, path, r.status_code, r.text)
        assert '"token_state":"ok"' not in client.get(f"/embed/customer-card?token={token}").text, name


def test_only_public_asymmetric_keys_can_be_registered(world):
    client, headers = world.client, bearer(world.keys["alpha"])
    ec_private = jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    weak_rsa = jwt.algorithms.RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(), as_dict=True
    )
    p384 = jwt.algorithms.ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True
    )
    documents = {
        "a private key": {**ec_private, "kid": "p"},
        "a symmetric key": {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "kid": "o"},
        "RSA under 2048 bits": {**weak_rsa, "kid": "w"},
        "an EC key off P-256": {**p384, "kid": "c"},
        "no kid": {k: v for k, v in ec_private.items() if k != "d"},
        "an RSA key declared HS256": {**weak_rsa, "kid": "h", "alg": "HS256"},
        "not a key": {"keys": "nope"},
    }
    for name, document in documents.items():
        r = client.post("/v1/host-keys", json=document, headers=headers)
        assert r.status_code == 422, (name, r.status_code, r.text)
    assert {k["kid"] for k in client.get("/v1/host-keys", headers=headers).json()["keys"]} == {"host-1"}
    assert (
        client.post("/v1/host-keys", json={"keys": []}, headers=ADMIN).status_code == 403
    )  # the operator's token manages no tenant's keys

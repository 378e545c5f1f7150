"""Signing in through the dashboard's forms, as a browser does (the TestClient keeps the cookies)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from fastapi.testclient import TestClient

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'<input type="hidden" name="csrf" value="([^"]+)">')


def form_csrf(client: TestClient, path: str = "/dashboard") -> str:
    """The CSRF token of the page's form (the sign-in form, or once signed in the session's own)."""
    page = client.get(path)
    found = _CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD, **extra: str):
    """POST the sign-in form with the CSRF token of a freshly loaded sign-in page."""
    csrf = form_csrf(client)
    body = urlencode({"csrf": csrf, "email": email, "password": password, **extra})
    return client.post("/dashboard/login", content=body, headers=FORM)


def session_csrf(client: TestClient) -> str:
    """The CSRF token of the signed-in session (what the dashboard's script sends)."""
    r = client.get("/v1/session")
    assert r.status_code == 200, r.text
    return r.json()["csrf_token"]

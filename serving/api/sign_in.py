"""Dashboard sign-in and sign-out with email and password: the forms' POST handlers and their cookies.

- The session cookie (``ll_session``) is HttpOnly, SameSite=Strict, ``Secure`` when the request came over
  TLS, ``Path=/``, and lives no longer than the session's absolute timeout.
- The sign-in form is protected by a double-submit CSRF token: ``GET /dashboard`` sets it in an HttpOnly
  cookie (``ll_login_csrf``) and in a hidden field; a POST whose field does not match is refused.
  Sign-out and every state-changing request with the session carry the session's own CSRF token.
- Sign-in rotates: it always makes a new session and ends any session the browser presented.
- Attempts are limited per client address (every attempt) and per account (failed attempts; once an
  account's budget is spent even its right password waits), and a failed attempt also counts against
  the address's failed authentications, like a bad API token. Each sign-in, failure and sign-out is
  written to the audit log.
- The tenant API key is not accepted: the form has no field for it, and a ``key`` field is ignored.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs, quote

import anyio.to_thread
from fastapi import HTTPException, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from ..users import MAX_PASSWORD_CHARS, AccountError, User
from .body import read_body
from .deps import SESSION_COOKIE, client_address, failed_authentication, refuse_if_failing, too_many
from .trail import record

__all__ = ["LOGIN_CSRF_COOKIE", "accept_invite", "login_csrf", "redeem_invite", "sign_in", "sign_out"]

LOGIN_CSRF_COOKIE = "ll_login_csrf"
FORM_BYTES = 4096  # an email, a password and a token; more is refused (413) before it is read
SIGN_IN_ADDRESS_PER_S = 0.5
SIGN_IN_ADDRESS_BURST = 30
"""Sign-in attempts a client address may make: 30 at once, then one every 2 s."""
SIGN_IN_ACCOUNT_PER_S = 1 / 30
SIGN_IN_ACCOUNT_BURST = 5
"""Failed sign-ins an account may take: 5, then one every 30 s (about 2,900 guesses a day at most)."""
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def login_csrf(request: Request) -> str:
    """The sign-in form's CSRF token: the browser's current one, or a new one (set by :func:`set_login_csrf`)."""
    current = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return current if 20 <= len(current) <= 64 and current.isascii() else secrets.token_urlsafe(24)


def set_login_csrf(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/dashboard"
    )


def _refusal(status: int, text: str, headers: dict | None = None) -> Response:
    return PlainTextResponse(text, status, headers={**NO_STORE, **(headers or {})})


async def _form(request: Request) -> dict[str, str] | Response:
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        return _refusal(403, "cross-site form refused")
    try:
        refuse_if_failing(request)
        raw = await read_body(request, FORM_BYTES)
    except HTTPException as exc:
        return _refusal(exc.status_code, exc.detail, exc.headers)
    fields = parse_qs(raw.decode("utf-8", "replace"))  # other fields a form or an extension adds: ignored
    return {name: (fields.get(name) or [""])[0] for name in ("email", "password", "csrf", "invite")}


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


async def sign_in(request: Request) -> Response:
    form = await _form(request)
    if isinstance(form, Response):
        return form
    if not _same(form["csrf"], request.cookies.get(LOGIN_CSRF_COOKIE, "")):
        return _refusal(403, "the sign-in form has expired or was not ours: reload the page and sign in")
    app, credentials = request.app, request.app.state.serving.credentials
    if wait := app.state.sign_in_addresses.take(client_address(request)):
        raise too_many(wait, "too many sign-in attempts from this address")
    account = form["email"].strip().lower()[:254]
    known = credentials.users.by_email(account) if account else None

    def failed(reason: str) -> None:  # under the account's tenant when it exists, else the operator's
        tenant = known.tenant_id if known else None
        record(
            request,
            "sign_in_failed",
            None,
            tenant_id=tenant,
            actor=f"user {account}",
            target=account,
            reason=reason,
        )

    if wait := app.state.sign_in_accounts.wait(account):
        failed("rate limited")
        raise too_many(wait, "too many failed sign-ins for this account")
    password = form["password"][:MAX_PASSWORD_CHARS]
    user = await anyio.to_thread.run_sync(lambda: credentials.users.authenticate(account, password))
    if user is None:
        app.state.sign_in_accounts.take(account)
        failed_authentication(request)
        failed("wrong email or password")
        return RedirectResponse("/dashboard?login=failed", 303, headers=NO_STORE)
    presented = request.cookies.get(SESSION_COOKIE)
    if presented:
        credentials.sessions.revoke(presented)  # rotation: a planted or older session never carries on
    session_id, _ = credentials.sessions.create(user.user_id, user.tenant_id, client_address(request))
    record(
        request,
        "sign_in",
        None,
        tenant_id=user.tenant_id,
        actor=f"user {user.email}",
        target=user.email,
        role=user.role,
    )
    response = RedirectResponse(f"/dashboard?tenant={quote(user.tenant_id)}", 303, headers=NO_STORE)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(credentials.sessions.absolute_seconds),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/dashboard")
    return response


async def sign_out(request: Request) -> Response:
    """End the session at once (every worker reads sessions from SQLite, uncached) and forget its cookie."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    credentials = request.app.state.serving.credentials
    session_id = request.cookies.get(SESSION_COOKIE, "")
    session = credentials.sessions.lookup(session_id)
    target = "/dashboard"
    if session is not None:
        if not _same(form["csrf"], session.csrf):
            return _refusal(403, "missing or wrong CSRF token")
        credentials.sessions.revoke(session_id)
        user = credentials.users.get(session.user_id)
        record(
            request,
            "sign_out",
            None,
            tenant_id=session.tenant_id,
            actor=f"user {user.email if user else session.user_id}",
            target=user.email if user else None,
        )
        target = f"/dashboard?tenant={quote(session.tenant_id)}&login=signed-out"
    response = RedirectResponse(target, 303, headers=NO_STORE)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


async def accept_invite(request: Request) -> Response:
    """The invite form (``invite``, ``password``, the sign-in form's ``csrf``): the invited user's
    password is set, and they are sent to sign in. A wrong invite counts as a failed authentication."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    if not _same(form["csrf"], request.cookies.get(LOGIN_CSRF_COOKIE, "")):
        return _refusal(403, "the invite form has expired or was not ours: reload the page")
    try:
        user = await redeem_invite(request, form["invite"].strip(), form["password"])
    except AccountError:
        return RedirectResponse("/dashboard/invite?invite=weak", 303, headers=NO_STORE)
    if user is None:
        return RedirectResponse("/dashboard/invite?invite=unknown", 303, headers=NO_STORE)
    return RedirectResponse(f"/dashboard?tenant={quote(user.tenant_id)}&login=invited", 303, headers=NO_STORE)


async def redeem_invite(request: Request, invite: str, password: str) -> User | None:
    """Set an invited user's password (argon2, off the loop) and audit it; None for an unknown, used or
    expired invite, which counts as a failed authentication. AccountError for a refused password. The
    one path of the invite form and of ``POST /v1/invites/accept``."""
    users = request.app.state.serving.credentials.users
    user = await anyio.to_thread.run_sync(lambda: users.accept_invite(invite, password))
    if user is None:
        failed_authentication(request)
        return None
    record(
        request,
        "invite_accepted",
        None,
        tenant_id=user.tenant_id,
        actor=f"user {user.email}",
        target=user.email,
    )
    return user

"""Request dependencies: who is asking (a bearer token, or the dashboard's session cookie), rate limits,
the serving state. What each route admits is declared once, with ``api.access.Access``."""

from __future__ import annotations

import hmac
from collections.abc import Collection
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from ..auth import AuthError, Principal, resolve
from ..state import ServingState

SESSION_COOKIE = "ll_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

NOT_FOUND = HTTPException(404, "not found")  # one body whether or not the object exists elsewhere


def get_state(request: Request) -> ServingState:
    return request.app.state.serving


StateDep = Annotated[ServingState, Depends(get_state)]


AUTH_FAILURES_PER_S = 1.0
AUTH_FAILURE_BURST = 20
"""Failed authentications a client address may make: a burst of 20, then one a second. Past that it gets
429 before its credential is even checked (guessing and 401 floods cost a bucket lookup, no more)."""


def client_address(request: Request) -> str:
    """The peer's address (behind a proxy: what the server's forwarded-headers setting makes it)."""
    client = request.scope.get("client")  # what ``request.client`` wraps, without the wrapper
    return client[0] if client else "?"


def refuse_if_failing(request: Request) -> None:
    """429 for an address that has used up its failed authentications."""
    wait = request.app.state.auth_failures.wait(client_address(request))
    if wait:
        raise too_many(wait, "too many failed authentications from this address")


def failed_authentication(request: Request) -> None:
    """Count one failed authentication against the client's address."""
    request.app.state.auth_failures.take(client_address(request))


def too_many(wait: float, message: str = "rate limit exceeded") -> HTTPException:
    return HTTPException(429, message, headers={"Retry-After": str(max(1, round(wait + 0.5)))})


def session_principal(request: Request, session_id: str) -> Principal:
    """The signed-in user of a session cookie (their role read now: a role change applies at once), or
    401. A state-changing request must also carry the session's CSRF token (header ``X-CSRF-Token``)."""
    credentials = request.app.state.serving.credentials
    session = credentials.sessions.lookup(session_id)
    user = credentials.users.get(session.user_id, session.tenant_id) if session else None
    if session is None or user is None:
        raise AuthError(401, "signed out or session expired")
    if request.method not in SAFE_METHODS and not hmac.compare_digest(
        request.headers.get(CSRF_HEADER, "").encode(), session.csrf.encode()
    ):
        raise AuthError(403, "missing or wrong CSRF token")
    return Principal(
        "user",
        user.tenant_id,
        generation=credentials.registry.generation(user.tenant_id)
        or 0,  # what an embed token it mints carries
        credential="user:" + user.user_id,
        role=user.role,
        user_id=user.user_id,
        actor=f"user {user.email}",
        csrf=session.csrf,
    )


def who_is_asking(request: Request) -> Principal:
    """The bearer token when there is one, else the session cookie; AuthError otherwise."""
    header = request.headers.get("authorization")
    if header is None and (session_id := request.cookies.get(SESSION_COOKIE)):
        return session_principal(request, session_id)
    credentials = request.app.state.serving.credentials

    def resolved() -> Principal:
        return resolve(
            header,
            registry=credentials.registry,
            signer=credentials.signer,
            admin_token=credentials.admin_token,
            keys=credentials.keys,
            host_keys=credentials.host_keys,
        )

    if header is None:
        return resolved()  # 401
    return credentials.principals.resolve(header, resolved)  # bounded as in ``principal_cache``


def no_longer_honoured(request: Request) -> str | None:
    """Why a credential accepted earlier is refused now (expired, key rotated or revoked, signed out), or
    None: long-lived responses (``GET /v1/live/stream``) check it again before every push."""
    try:
        who_is_asking(request)
    except AuthError as exc:
        return exc.message
    return None


def authorize(request: Request, admits: Collection[str], *, tenant_wide: bool = False) -> Principal:
    """Who is asking, rate-limited, and admitted by this endpoint (``admits``: the roles, key scopes and
    token kinds of its ``Access`` declaration) — a plain function, so the hot routes (``api.hot``) pay for
    no dependency machinery; ``Access`` wraps it as a FastAPI dependency.

    Rate limits: one bucket per credential (``Principal.credential``: the tenant key, each dashboard
    and each embed token apart), and on ``tenant_wide`` routes (answers about the whole tenant, which
    every embed token may read) also one bucket per tenant, so N tokens are not N times the limit."""
    app = request.app
    refuse_if_failing(request)
    try:
        who = who_is_asking(request)
    except AuthError as exc:
        failed_authentication(request)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        raise HTTPException(exc.status, exc.message, headers=headers) from None
    buckets = [who.credential]
    if tenant_wide and who.tenant_id is not None:
        buckets.append(f"tenant:{who.tenant_id}")
    wait = app.state.limiter.take(*buckets)
    if wait:
        raise too_many(wait)
    if who.grants().isdisjoint(admits):
        raise HTTPException(403, "this token cannot use this endpoint")
    return who


def customer_scope(who: Principal, customer_id: str) -> None:
    """An embed token reads its own customer only; anything else is 404, never 403 (no existence leak)."""
    if not who.can_read_customer(customer_id):
        raise NOT_FOUND


def campaign_scope(who: Principal, campaign_id: str) -> None:
    """An embed token reads the campaigns it names only; 404 like an unknown campaign."""
    if not who.can_read_campaign(campaign_id):
        raise NOT_FOUND


def cohort_scope(who: Principal) -> None:
    if not who.can_read_cohorts():
        raise HTTPException(403, "this token cannot read the cohort table")

"""Request dependencies: who is asking (from the bearer token), rate limits, the serving state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from ..auth import AuthError, Principal, resolve
from ..state import ServingState

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
    return request.client.host if request.client else "?"


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


def _resolve(request: Request, header: str | None) -> Principal:
    credentials = request.app.state.serving.credentials
    return resolve(
        header,
        registry=credentials.registry,
        signer=credentials.signer,
        admin_token=credentials.admin_token,
    )


def no_longer_honoured(request: Request, header: str | None) -> str | None:
    """Why a credential accepted earlier is refused now (expired, key rotated or revoked), or None:
    long-lived responses (``GET /v1/live/stream``) check it again before every push."""
    try:
        _resolve(request, header)
    except AuthError as exc:
        return exc.message
    return None


def authorize(request: Request, kinds: tuple[str, ...], *, tenant_wide: bool = False) -> Principal:
    """Who is asking, rate-limited, and allowed to use this endpoint — a plain function, so the hot
    routes (``api.hot``) pay for no dependency machinery; the FastAPI dependencies below wrap it.

    Rate limits: one bucket per credential (``Principal.credential``: the tenant key, each dashboard
    and each embed token apart), and on ``tenant_wide`` routes (answers about the whole tenant, which
    every embed token may read) also one bucket per tenant, so N tokens are not N times the limit."""
    app = request.app
    refuse_if_failing(request)
    try:
        who = _resolve(request, request.headers.get("authorization"))
    except AuthError as exc:
        failed_authentication(request)
        raise HTTPException(exc.status, exc.message, headers={"WWW-Authenticate": "Bearer"}) from None
    buckets = [who.credential]
    if tenant_wide and who.tenant_id is not None:
        buckets.append(f"tenant:{who.tenant_id}")
    wait = app.state.limiter.take(*buckets)
    if wait:
        raise too_many(wait)
    if who.kind not in kinds:
        raise HTTPException(403, "this token cannot use this endpoint")
    return who


READERS = ("tenant", "dashboard", "embed")


def _require(*kinds: str):
    def check(request: Request) -> Principal:
        return authorize(request, kinds)

    return check


AdminDep = Annotated[Principal, Depends(_require("admin"))]
TenantDep = Annotated[Principal, Depends(_require("tenant"))]
ReaderDep = Annotated[Principal, Depends(_require(*READERS))]


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

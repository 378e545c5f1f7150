"""Request dependencies: who is asking (from the bearer token), rate limits, the serving state."""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from ..auth import AuthError, Principal, resolve
from ..state import ServingState

NOT_FOUND = HTTPException(404, "not found")  # one body whether or not the object exists elsewhere


def get_state(request: Request) -> ServingState:
    return request.app.state.serving


StateDep = Annotated[ServingState, Depends(get_state)]


class RateLimiter:
    """A token bucket per credential: ``rate`` requests/s with bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, who: str) -> float:
        """0 if allowed, else seconds until a token is free."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(who, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[who] = (tokens - 1, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1 - tokens) / self.rate


def authorize(request: Request, kinds: tuple[str, ...]) -> Principal:
    """Who is asking, rate-limited, and allowed to use this endpoint — a plain function, so the hot
    routes (``api.hot``) pay for no dependency machinery; the FastAPI dependencies below wrap it."""
    app = request.app
    credentials = app.state.serving.credentials
    try:
        who = resolve(
            request.headers.get("authorization"),
            registry=credentials.registry,
            signer=credentials.signer,
            admin_token=credentials.admin_token,
        )
    except AuthError as exc:
        raise HTTPException(exc.status, exc.message, headers={"WWW-Authenticate": "Bearer"}) from None
    key = who.kind if who.kind == "admin" else f"{who.tenant_id}:{who.customer_id or ''}"
    wait = app.state.limiter.take(key)
    if wait:
        raise HTTPException(
            429, "rate limit exceeded", headers={"Retry-After": str(max(1, round(wait + 0.5)))}
        )
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

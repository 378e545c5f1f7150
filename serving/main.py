"""Builds the FastAPI app: routers, the rate limiter, fail-closed 503s, latency metrics per route."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from lambdalytics.speed.store import CoverageError

from .api.access import api_routes, publish
from .api.deps import AUTH_FAILURE_BURST, AUTH_FAILURES_PER_S
from .api.errors import json_safe_errors
from .api.hot import HotLane, HotRoute, coverage_response
from .api.routes import (
    accounts,
    admin,
    audit,
    branding,
    campaigns,
    cohorts,
    customers,
    erasures,
    events,
    keys,
    live,
    quality,
    segments,
    stream,
    system,
    web,
)
from .api.sign_in import (
    SIGN_IN_ACCOUNT_BURST,
    SIGN_IN_ACCOUNT_PER_S,
    SIGN_IN_ADDRESS_BURST,
    SIGN_IN_ADDRESS_PER_S,
)
from .rate_limit import RateLimiter
from .state import ServingState

__all__ = ["create_app"]

HOT = (customers, campaigns, live, cohorts, segments)
"""The routers of polled reads: included first, and their routes are the hot lane's."""


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(state: ServingState) -> FastAPI:
    app = FastAPI(
        title="Lambdalytics API",
        version="1",
        description="Exact, fresh, tenant-safe customer-facing analytics: batch ⊕ speed, merged.",
        generate_unique_id_function=_operation_id,
        # metrics go to Prometheus (/metrics); FastAPI's OpenTelemetry hooks would cost a check per request
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.serving = state
    app.state.limiter = RateLimiter(state.settings.rate_limit_per_s, state.settings.rate_limit_burst)
    app.state.auth_failures = RateLimiter(AUTH_FAILURES_PER_S, AUTH_FAILURE_BURST)  # per client address
    app.state.sign_in_accounts = RateLimiter(SIGN_IN_ACCOUNT_PER_S, SIGN_IN_ACCOUNT_BURST)  # per email
    app.state.sign_in_addresses = RateLimiter(SIGN_IN_ADDRESS_PER_S, SIGN_IN_ADDRESS_BURST)  # per client
    routers = (*HOT, stream, system, events, admin, quality, accounts, keys, audit, erasures, branding, web)
    for module in routers:  # polled first
        for route in api_routes(module.router.routes):
            publish(route)  # each route's Access declaration, as ``x-admits`` in OpenAPI
        app.include_router(module.router)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": json_safe_errors(exc.errors())}, 422)

    @app.exception_handler(CoverageError)
    async def fail_closed(request: Request, exc: CoverageError) -> JSONResponse:
        return coverage_response(exc)

    hot = [r for module in HOT for r in module.router.routes if isinstance(r, HotRoute)]
    app.add_middleware(HotLane, routes=hot, histogram=state.telemetry.request_latency)
    return app

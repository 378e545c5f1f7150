"""Builds the FastAPI app: routers, the rate limiter, latency metrics per route."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from lambdalytics.speed.store import CoverageError

from .api.deps import RateLimiter
from .api.routes import admin, customers, events, system, tenant
from .state import ServingState

__all__ = ["create_app"]


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(state: ServingState) -> FastAPI:
    app = FastAPI(
        title="Lambdalytics API",
        version="1",
        description="Exact, fresh, tenant-safe customer-facing analytics: batch ⊕ speed, merged.",
        generate_unique_id_function=_operation_id,
    )
    app.state.serving = state
    app.state.limiter = RateLimiter(state.settings.rate_limit_per_s, state.settings.rate_limit_burst)
    for module in (system, customers, tenant, events, admin):
        app.include_router(module.router)

    @app.exception_handler(CoverageError)
    async def fail_closed(request: Request, exc: CoverageError) -> JSONResponse:
        """Never a silent undercount: if the speed side cannot cover W, say so."""
        return JSONResponse(
            {"detail": f"speed layer cannot answer for the batch watermark: {exc}"},
            503,
            headers={"Retry-After": "1"},
        )

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = route.path if route is not None else "unmatched"
        state.request_latency.labels(path, request.method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    return app

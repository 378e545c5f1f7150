"""Builds the FastAPI app: routers, the rate limiter, fail-closed 503s, latency metrics per route."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lambdalytics.speed.store import CoverageError

from .api.deps import RateLimiter
from .api.routes import admin, customers, events, system, tenant
from .state import ServingState

__all__ = ["create_app"]


class LatencyMetrics:
    """Request latency per route, method and status — a pure ASGI middleware, because Starlette's
    ``BaseHTTPMiddleware`` (``@app.middleware``) costs a task and a stream per request on the hot routes."""

    def __init__(self, app: ASGIApp, histogram: Histogram):
        self.app, self.histogram = app, histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = route.path if route is not None else "unmatched"
            self.histogram.labels(path, scope["method"], str(status)).observe(time.perf_counter() - started)


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

    app.add_middleware(LatencyMetrics, histogram=state.request_latency)
    return app

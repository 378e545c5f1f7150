"""The polled read routes, without FastAPI's per-request machinery (measured in docs/performance.md).

A naive FastAPI route reaches ~0.45× a bare Starlette route on this box; the cost is dependency solving,
parameter validation, response encoding and the layers around the router, not the lookup. A ``HotRoute``
is still an ``APIRoute`` — listed in OpenAPI, its parameters documented by hand through
``openapi_extra`` — but its endpoint is ``async def endpoint(request) -> Response``: it parses its own few
parameters with ``params`` helpers, authorizes with the plain ``deps.authorize`` function and answers
orjson bytes. Their answer is computed by ``off_loop``: on the loop when the speed store is in-process
(the embedded store's reads are memory lookups), in a worker thread when it answers over the network
(Pinot's reads are blocking HTTP calls, which would stall every request of the worker). ``HotLane``, the
app's outermost middleware, sends a GET that matches a HotRoute straight
to that endpoint (FastAPI's router, exit-stack and exception layers are skipped; errors get the same
JSON bodies) and times every request for Prometheus.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import anyio.to_thread
import orjson
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import Histogram
from starlette.exceptions import HTTPException
from starlette.routing import get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lambdalytics.speed.store import CoverageError

from .freshness import freshness_json

__all__ = [
    "HotLane",
    "HotRoute",
    "coverage_response",
    "json_response",
    "off_loop",
    "param",
    "with_freshness",
]

T = TypeVar("T")

ERROR = {
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"detail": {}}, "required": ["detail"]}
        }
    }
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid or expired token", **ERROR},
    403: {"description": "This token cannot use this endpoint", **ERROR},
    404: {"description": "Not found, or not visible to this token", **ERROR},
    422: {"description": "Invalid parameter", **ERROR},
    429: {"description": "Rate limit exceeded (see Retry-After)", **ERROR},
    503: {"description": "The speed layer cannot cover the batch watermark (fail closed)", **ERROR},
}


class HotRoute(APIRoute):
    """An APIRoute whose handler is the endpoint itself: ``Request`` in, ``Response`` out."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any):
        kwargs["responses"] = {**RESPONSES, **(kwargs.get("responses") or {})}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        return self.endpoint


class JsonBytes(Response):
    """A 200 answer of ready JSON bytes, with the headers Starlette's ``Response`` would give it
    (``content-length``, ``content-type``), built without its general header machinery."""

    media_type = "application/json"

    def __init__(self, body: bytes):
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]


def json_response(body: dict[str, Any]) -> Response:
    return JsonBytes(orjson.dumps(body))


def with_freshness(head: bytes, state: Any) -> Response:
    """An encoded JSON object (an answer without its freshness, ``api.answers``) with ``freshness``
    appended as its last member: the bytes ``json_response`` gives for the whole answer."""
    fresh = freshness_json(state)
    body = b'{"freshness":%s}' % fresh if head == b"{}" else b'%s,"freshness":%s}' % (head[:-1], fresh)
    return JsonBytes(body)


async def off_loop(request: Request, answer: Callable[[], T]) -> T:
    """``answer()`` — merge, freshness and all — never blocking the event loop on the speed store."""
    if request.app.state.serving.reads_block:
        return await anyio.to_thread.run_sync(answer)
    return answer()


def param(
    name: str,
    where: str,
    description: str,
    schema: dict[str, Any] | None = None,
    *,
    required: bool = False,
) -> dict[str, Any]:
    """One OpenAPI parameter object (the hand-written half of a HotRoute's documentation)."""
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


def coverage_response(exc: CoverageError) -> JSONResponse:
    """Never a silent undercount: if the speed side cannot cover W, say so."""
    return JSONResponse(
        {"detail": f"speed layer cannot answer for the batch watermark: {exc}"},
        503,
        headers={"Retry-After": "1"},
    )


def sent_path(scope: Scope) -> str:
    """The route path as the client sent it (still percent-encoded), so that an id holding an encoded
    ``/`` (``a%2Fb``) stays one path segment; the parameters are decoded after matching. The server's
    decoded ``path`` turns ``a%2Fb`` into two segments, and such a customer could never be read."""
    raw = scope.get("raw_path")
    if not raw or not raw.isascii():
        return get_route_path(scope)
    path = raw.decode("ascii")
    root = quote(scope.get("root_path", ""))
    if root and path.startswith(root + "/"):
        path = path[len(root) :]
    return path


class HotLane:
    """Outermost middleware: HotRoute GETs go straight to their endpoint; every request is timed."""

    def __init__(self, app: ASGIApp, routes: list[HotRoute], histogram: Histogram):
        self.app, self.routes, self.histogram = app, routes, histogram
        self._series: dict[tuple[str, str, int], Any] = {}  # (path, method, status) -> its histogram child

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        if scope["method"] == "GET":
            path = sent_path(scope)
            for route in self.routes:
                match = route.path_regex.match(path)
                if match is not None:
                    scope["path_params"] = {name: unquote(v) for name, v in match.groupdict().items()}
                    response = await self._answer(route, Request(scope, receive))
                    await response(scope, receive, send)
                    self._observe(route.path, "GET", response.status_code, started)
                    return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            self._observe(route.path if route is not None else "unmatched", scope["method"], status, started)

    @staticmethod
    async def _answer(route: HotRoute, request: Request) -> Response:
        try:
            return await route.endpoint(request)
        except HTTPException as exc:
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        except CoverageError as exc:
            return coverage_response(exc)

    def _observe(self, path: str, method: str, status: int, started: float) -> None:
        series = self._series.get((path, method, status))
        if series is None:  # ``labels()`` looks the child up under a lock: once per series, not per request
            series = self._series[(path, method, status)] = self.histogram.labels(path, method, str(status))
        series.observe(time.perf_counter() - started)

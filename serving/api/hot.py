"""The polled read routes, without FastAPI's per-request machinery (see ../shared/SERVING_PERF.md).

A naive FastAPI route reaches ~0.45× a bare Starlette route on this box; the cost is dependency solving,
parameter validation and response encoding, not the lookup. A ``HotRoute`` is still an ``APIRoute`` — it
is listed in OpenAPI, with its parameters documented by hand through ``openapi_extra`` — but a request
goes straight to the endpoint, ``async def endpoint(request) -> Response``, which parses its own few
parameters with ``params`` helpers, authorizes with the plain ``deps.authorize`` function and answers
orjson bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

__all__ = ["HotRoute", "json_response", "param"]

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


def json_response(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


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

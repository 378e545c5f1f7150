"""The tenant's live order metrics over a window (a hot route: every embed token may poll it)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..deps import READERS, authorize
from ..freshness import freshness
from ..hot import HotRoute, json_response, off_loop, param
from ..params import window_seconds

router = APIRouter(prefix="/v1", tags=["live"], route_class=HotRoute)


@router.get(
    "/live/orders",
    openapi_extra={
        "parameters": [
            param("window", "query", "e.g. 30m, 2h, 1d (max 7d)", {"type": "string", "default": "30m"})
        ]
    },
)
async def live_orders(request: Request) -> Response:
    """Orders in progress and wait times over the window, for the tenant (every embed token may read it)."""
    who = authorize(request, READERS, tenant_wide=True)
    seconds = window_seconds(request.query_params.get("window", "30m"))
    state = request.app.state.serving
    return json_response(await off_loop(request, lambda: live_orders_answer(state, who.tenant_id, seconds)))


def live_orders_answer(state, tenant_id: str, seconds: int) -> dict:
    """The answer of ``GET /v1/live/orders`` (also pushed by ``GET /v1/live/stream``)."""
    merged = state.merger.live_orders(tenant_id, seconds * 1000)
    return {**merged, "window_seconds": seconds, "freshness": freshness(state)}

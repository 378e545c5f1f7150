"""The tenant's live order metrics over a window (a hot route: every embed token may poll it)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..access import READ_TENANT_WIDE
from ..answers import encoded_at
from ..freshness import freshness
from ..hot import HotRoute, off_loop, param, with_freshness
from ..params import now_ms, window_seconds

router = APIRouter(prefix="/v1", tags=["live"], route_class=HotRoute)


@router.get(
    "/live/orders",
    openapi_extra=READ_TENANT_WIDE.openapi(
        parameters=[
            param("window", "query", "e.g. 30m, 2h, 1d (max 7d)", {"type": "string", "default": "30m"})
        ]
    ),
)
async def live_orders(request: Request) -> Response:
    """Orders in progress and wait times over the window, for the tenant (every embed token may read it)."""
    who = READ_TENANT_WIDE(request)
    seconds = window_seconds(request.query_params.get("window", "30m"))
    state = request.app.state.serving
    now = now_ms()

    def answer() -> tuple[dict, int]:
        merged, until = state.merger.live_orders_until(who.tenant_id, seconds * 1000, now)
        return {**merged, "window_seconds": seconds}, until

    key = ("live_orders", seconds)
    head = await off_loop(request, lambda: encoded_at(state, who.tenant_id, key, now, answer))
    return with_freshness(head, state)


def live_orders_answer(state, tenant_id: str, seconds: int) -> dict:
    """The answer of ``GET /v1/live/orders`` (also pushed by ``GET /v1/live/stream``)."""
    merged = state.merger.live_orders(tenant_id, seconds * 1000)
    return {**merged, "window_seconds": seconds, "freshness": freshness(state)}

"""A campaign's stats: totals and points (a hot route: polled by dashboards and widgets)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from lambdalytics.schemas.catalog import HOUR_MS

from ...merge import NotFound
from ..access import READ_TENANT_WIDE
from ..answers import encoded
from ..deps import NOT_FOUND, campaign_scope
from ..hot import HotRoute, off_loop, param, with_freshness
from ..params import GRANULARITY_MS, ID_SCHEMA, choice, iso, path_id, time_range

router = APIRouter(prefix="/v1", tags=["campaigns"], route_class=HotRoute)


@router.get(
    "/campaigns/{campaign_id}/stats",
    openapi_extra=READ_TENANT_WIDE.openapi(
        parameters=[
            param("campaign_id", "path", "The tenant's campaign id.", ID_SCHEMA),
            param("start", "query", "ISO 8601; default end - 30 days."),
            param("end", "query", "ISO 8601; default now."),
            param("granularity", "query", "Bucket width.", {"enum": ["hour", "day"], "default": "day"}),
        ]
    ),
)
async def campaign_stats(request: Request) -> Response:
    """Totals and per-bucket impressions, clicks, spend, conversions, CTR, CPC and CPA of one campaign."""
    who = READ_TENANT_WIDE(request)
    campaign_id = path_id(request.path_params, "campaign_id")
    query = request.query_params
    granularity = choice(query.get("granularity"), "granularity", ("hour", "day"), "day")
    campaign_scope(who, campaign_id)
    start_ms, end_ms = time_range(query.get("start"), query.get("end"))
    # hours are hour starts, in the range when start <= hour < end: the same hours as from the next
    # hour starts of start and end, so the answer (and its cache key) holds for the whole hour
    start_ms, end_ms = _next_hour(start_ms), _next_hour(end_ms)
    state = request.app.state.serving
    key = ("campaign", campaign_id, start_ms, end_ms, granularity)

    def answer() -> dict:
        try:
            totals, points = state.merger.campaign(
                who.tenant_id, campaign_id, start_ms, end_ms, GRANULARITY_MS[granularity]
            )
        except NotFound:
            raise NOT_FOUND from None
        return {
            "campaign_id": campaign_id,
            "totals": totals,
            "points": [{"ts": iso(ts), **values} for ts, values in points],
        }

    head = await off_loop(request, lambda: encoded(state, who.tenant_id, key, answer))
    return with_freshness(head, state)


def _next_hour(ms: int) -> int:
    """The first hour start at or after ``ms``."""
    return -(-ms // HOUR_MS) * HOUR_MS

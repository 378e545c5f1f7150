"""Campaign, live-orders and cohort answers: tenant-level reads (hot routes: polled by dashboards)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ...merge import NotFound
from ..deps import NOT_FOUND, READERS, authorize, campaign_scope, cohort_scope
from ..freshness import freshness
from ..hot import HotRoute, json_response, param
from ..params import GRANULARITY_MS, ID_SCHEMA, choice, iso, month_of, path_id, time_range, window_seconds

router = APIRouter(prefix="/v1", tags=["tenant"], route_class=HotRoute)


@router.get(
    "/campaigns/{campaign_id}/stats",
    openapi_extra={
        "parameters": [
            param("campaign_id", "path", "The tenant's campaign id.", ID_SCHEMA),
            param("start", "query", "ISO 8601; default end - 30 days."),
            param("end", "query", "ISO 8601; default now."),
            param("granularity", "query", "Bucket width.", {"enum": ["hour", "day"], "default": "day"}),
        ]
    },
)
async def campaign_stats(request: Request) -> Response:
    """Totals and per-bucket impressions, clicks, spend, conversions, CTR, CPC and CPA of one campaign."""
    who = authorize(request, READERS)
    campaign_id = path_id(request.path_params, "campaign_id")
    query = request.query_params
    granularity = choice(query.get("granularity"), "granularity", ("hour", "day"), "day")
    campaign_scope(who, campaign_id)
    start_ms, end_ms = time_range(query.get("start"), query.get("end"))
    state = request.app.state.serving
    try:
        totals, points = state.merger.campaign(
            who.tenant_id, campaign_id, start_ms, end_ms, GRANULARITY_MS[granularity]
        )
    except NotFound:
        raise NOT_FOUND from None
    return json_response(
        {
            "campaign_id": campaign_id,
            "totals": totals,
            "points": [{"ts": iso(ts), **values} for ts, values in points],
            "freshness": freshness(state),
        }
    )


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
    who = authorize(request, READERS)
    seconds = window_seconds(request.query_params.get("window", "30m"))
    state = request.app.state.serving
    answer = state.merger.live_orders(who.tenant_id, seconds * 1000)
    return json_response({**answer, "window_seconds": seconds, "freshness": freshness(state)})


@router.get(
    "/cohorts/retention",
    openapi_extra={
        "parameters": [
            param("start", "query", "First cohort month, YYYY-MM"),
            param("end", "query", "Last cohort month, YYYY-MM"),
        ]
    },
)
async def cohorts(request: Request) -> Response:
    """Monthly order cohorts and the share of each cohort ordering again N months later."""
    who = authorize(request, READERS)
    cohort_scope(who)
    query = request.query_params
    start, end = month_of(query.get("start"), "start"), month_of(query.get("end"), "end")
    state = request.app.state.serving
    rows = state.merger.cohorts(who.tenant_id, start, end)
    return json_response({"cohorts": rows, "freshness": freshness(state)})

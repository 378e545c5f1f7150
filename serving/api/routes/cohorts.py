"""The tenant's monthly order cohorts and their retention (a hot route: polled by dashboards)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..access import READ_TENANT_WIDE
from ..deps import cohort_scope
from ..freshness import freshness
from ..hot import HotRoute, json_response, off_loop, param
from ..params import month_of

router = APIRouter(prefix="/v1", tags=["cohorts"], route_class=HotRoute)


@router.get(
    "/cohorts/retention",
    openapi_extra=READ_TENANT_WIDE.openapi(
        parameters=[
            param("start", "query", "First cohort month, YYYY-MM"),
            param("end", "query", "Last cohort month, YYYY-MM"),
        ]
    ),
)
async def retention(request: Request) -> Response:
    """Monthly order cohorts and the share of each cohort ordering again N months later."""
    who = READ_TENANT_WIDE(request)
    cohort_scope(who)
    query = request.query_params
    start, end = month_of(query.get("start"), "start"), month_of(query.get("end"), "end")
    state = request.app.state.serving

    def answer() -> dict:
        return {"cohorts": state.merger.cohorts(who.tenant_id, start, end), "freshness": freshness(state)}

    return json_response(await off_loop(request, answer))

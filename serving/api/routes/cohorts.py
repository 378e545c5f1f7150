"""The tenant's monthly order cohorts and their retention (a hot route: polled by dashboards)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..access import READ_TENANT_WIDE
from ..answers import encoded
from ..deps import cohort_scope
from ..hot import HotRoute, off_loop, param, with_freshness
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
        return {"cohorts": state.merger.cohorts(who.tenant_id, start, end)}

    head = await off_loop(request, lambda: encoded(state, who.tenant_id, ("cohorts", start, end), answer))
    return with_freshness(head, state)
